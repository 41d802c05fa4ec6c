"""The one state machine behind every rule: pending, firing, clearing, with minimum durations.

Each evaluation a rule gives a `Verdict` for its key:

- BREACH: the firing condition holds. An idle key becomes pending; a pending key fires once the
  breach has held for `fire_after`.
- BAND: between the firing and the clear condition (the clear margin). A pending key goes back
  to idle; a firing key stays firing; a clearing key goes back to firing.
- RECOVERED: the clear condition holds. A firing key starts clearing and resolves once the
  recovery has held for `clear_after`. A pending key goes back to idle.
- PAUSED: nothing can be said now (a break, stale data, too small a sample). Nothing changes
  and the running timer stops; it goes on from the next evaluation that is not paused.
- OFF: the rule does not apply (no shift, a new shift for a per-shift rule, the scope is gone).
  A firing key is resolved at once; a pending one is forgotten.

Durations add up the time between consecutive evaluations with the same verdict, so they do
not depend on how often `step` is called, and a pause is not counted. A key fires at most once
until it is resolved (the deduplication by rule and scope).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from server.alerts.transitions import AlertKey, Value

_ZERO = dt.timedelta(0)


class Verdict(enum.Enum):
    """What a rule says about its key at one evaluation."""

    BREACH = "breach"
    BAND = "band"
    RECOVERED = "recovered"
    PAUSED = "paused"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class Check:
    """A rule's verdict, with the words and the values that made it."""

    verdict: Verdict
    text: str
    values: Mapping[str, Value] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Timing:
    """How long a breach must hold to fire, and a recovery to resolve."""

    fire_after: dt.timedelta
    clear_after: dt.timedelta


@dataclass(frozen=True, slots=True)
class Change:
    """A key fired or was resolved; `since` is when its condition began."""

    kind: Literal["firing", "resolved"]
    since: dt.datetime


class _Phase(enum.Enum):
    PENDING = "pending"
    FIRING = "firing"
    CLEARING = "clearing"


@dataclass(slots=True)
class _State:
    phase: _Phase
    since: dt.datetime
    """When the current phase's condition began."""
    last: dt.datetime | None
    """The last evaluation counted into `held` (None after a pause)."""
    held: dt.timedelta = _ZERO

    def enter(self, phase: _Phase, now: dt.datetime) -> None:
        self.phase, self.since, self.last, self.held = phase, now, now, _ZERO

    def count(self, now: dt.datetime) -> None:
        if self.last is not None:
            self.held += now - self.last
        self.last = now


class Hysteresis:
    """The state of every key that is not idle."""

    def __init__(self) -> None:
        self._states: dict[AlertKey, _State] = {}

    def active(self) -> list[AlertKey]:
        """Keys pending, firing or clearing."""
        return list(self._states)

    def restore(self, key: AlertKey, since: dt.datetime) -> None:
        """Take `key` as firing since `since` (an alert kept across a restart): it does not
        fire again, and resolves as any firing key does."""
        self._states[key] = _State(_Phase.FIRING, since, None)

    def step(
        self, key: AlertKey, now: dt.datetime, verdict: Verdict, timing: Timing
    ) -> Change | None:
        """Take one verdict for `key` at `now`; returns the change it makes, if any."""
        state = self._states.get(key)
        if verdict is Verdict.OFF:
            if state is None:
                return None
            del self._states[key]
            return None if state.phase is _Phase.PENDING else Change("resolved", now)
        if state is None:
            if verdict is not Verdict.BREACH:
                return None
            state = self._states[key] = _State(_Phase.PENDING, now, now)
        if verdict is Verdict.PAUSED:
            state.last = None
            return None
        if state.phase is _Phase.PENDING and verdict is not Verdict.BREACH:
            del self._states[key]
            return None
        if state.phase is _Phase.FIRING:
            if verdict is not Verdict.RECOVERED:
                return None
            state.enter(_Phase.CLEARING, now)
        elif state.phase is _Phase.CLEARING and verdict is not Verdict.RECOVERED:
            state.phase = _Phase.FIRING
            return None
        state.count(now)
        if state.phase is _Phase.PENDING and state.held >= timing.fire_after:
            state.phase = _Phase.FIRING
            return Change("firing", state.since)
        if state.phase is _Phase.CLEARING and state.held >= timing.clear_after:
            del self._states[key]
            return Change("resolved", state.since)
        return None
