"""An alert as the lifecycle engine keeps it: state, escalation plan, and every notification.

Plain data, changed by `server.alerts.lifecycle` and written by `server.alerts.alert_store`.
States: `firing` (raised, no message delivered yet), `notified` (a message was delivered),
`acknowledged`, `resolved`; a milestone notice is `notice` from the start (nothing to resolve).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from server.alerts.transitions import AlertKey, Value
from taktline.model.alerts import Severity

AlertKind = Literal["alert", "notice"]
AlertState = Literal["firing", "notified", "acknowledged", "resolved", "notice"]
OPEN_STATES: tuple[AlertState, ...] = ("firing", "notified", "acknowledged")
Reason = Literal["alert", "escalation", "repeat", "acknowledged", "resolved", "notice"]
"""Why a message went out: the first level, a later level, a reminder, the notice that someone
acknowledged, the resolved notice, a milestone notice."""
Result = Literal["pending", "delivered", "failed", "interrupted"]
"""A notification's outcome; `interrupted`: the server stopped before the channel answered."""
AckVia = Literal["link", "api"]


@dataclass(frozen=True, slots=True)
class Step:
    """One person of an alert's escalation plan, alerted at `due_at` unless acknowledged."""

    level: str
    """`shift lead`, `area manager`, ..."""
    person: str
    due_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one person on one of their channels."""

    message_id: str
    person: str
    level: str
    reason: Reason
    channel: str
    """The channel in its redacted form."""
    sent_at: dt.datetime
    result: Result = "pending"
    result_at: dt.datetime | None = None
    attempts: int = 0
    error: str | None = None


@dataclass(slots=True)
class Alert:
    """One alert (or milestone notice) of one key."""

    id: int
    kind: AlertKind
    key: AlertKey
    severity: Severity
    lines: tuple[str, ...]
    message: str
    since: dt.datetime
    """When the condition began (the breach; for a notice, the crossing)."""
    raised_at: dt.datetime
    state: AlertState
    values: Mapping[str, Value] = field(default_factory=dict)
    chain: tuple[Step, ...] = ()
    next_step: int = 0
    """Index of the first step of `chain` not alerted yet."""
    current: tuple[Step, ...] = ()
    """The steps alerted last: reminders go to them."""
    next_repeat_at: dt.datetime | None = None
    acknowledged_at: dt.datetime | None = None
    acknowledged_by: str | None = None
    acknowledged_via: AckVia | None = None
    resolved_at: dt.datetime | None = None
    resolved_message: str | None = None
    notifications: list[Notification] = field(default_factory=list)

    @property
    def open(self) -> bool:
        """Firing, notified or acknowledged."""
        return self.state in OPEN_STATES

    @property
    def next_escalation_at(self) -> dt.datetime | None:
        """When the next level is alerted, while nobody has acknowledged."""
        if self.state not in ("firing", "notified") or self.next_step >= len(self.chain):
            return None
        return self.chain[self.next_step].due_at

    @property
    def ref(self) -> str:
        """What an acknowledge link names: the id and when the alert was raised (epoch s), so a
        link never fits another alert that got the same id from a store started afresh."""
        return f"{self.id}@{int(self.raised_at.timestamp())}"

    def notified(self) -> list[str]:
        """The people a message of this alert was delivered to, in order."""
        return list(dict.fromkeys(n.person for n in self.notifications if n.result == "delivered"))
