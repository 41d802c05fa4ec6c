"""What the rule evaluator hands on: an alert key and its transitions (firing, resolved, notice).

Routing, channels and acknowledgement read these; nothing here knows about them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from taktline.model.alerts import Severity

RuleName = Literal[
    "line_stopped",
    "rate_below_target",
    "shift_target_at_risk",
    "yield_below",
    "source_stale",
    "edge_backlog",
    "milestone",
]
TransitionKind = Literal["firing", "resolved", "notice"]
Value = float | int | str | None


@dataclass(frozen=True, slots=True, order=True)
class AlertKey:
    """One alert: a rule at a scope. `scope` is `line/{line}`, `station/{line}/{station}`,
    `edge/{edge}`, `source/{edge}/{source}` or `milestone/{milestone}/{value}`."""

    rule: RuleName
    scope: str

    def __str__(self) -> str:
        return f"{self.rule}:{self.scope}"


@dataclass(frozen=True, slots=True)
class Transition:
    """An alert starts firing, is resolved, or is a one-off notice (a milestone: no resolve).

    `since` is when the condition began (firing: the breach; resolved: the recovery; notice:
    the crossing). `lines` are the lines concerned, for routing to their shift leads.
    """

    kind: TransitionKind
    key: AlertKey
    severity: Severity
    at: dt.datetime
    since: dt.datetime
    message: str
    lines: tuple[str, ...]
    values: Mapping[str, Value] = field(default_factory=dict)
