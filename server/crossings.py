"""Milestone crossings: which milestone values the live bus's counter totals pass, exactly once.

Rules:
- A milestone's scope total is the sum of the latest totals of the plant counters in its scope
  (`server.milestones.in_scope`). A value V is crossed when an update takes the scope total from
  below V to at least V; a step (`every`) crosses every multiple it passes, a threshold once.
- A counter's latest total only grows: a duplicate or an older total arriving after a newer one
  changes nothing (an edge whose state was lost starts again from 0: its counter crosses nothing
  until it passes its old total).
- A counter heard of for the first time (not in the store, not seen since start) only primes its
  total: it crosses nothing, since it is not known what it was before. A counter known from the
  store crosses with its first message after a restart when that message is higher.
- Each crossing is stamped with the `ts` of the update that crossed it and names the counter
  (and so the line) of that update; a (milestone, value) pair already crossed never crosses again.

Exactly once across restarts: the detector's counter totals and crossings are taken out with
`take_changes` and written to the state store in one transaction, before any output is made
(`server.milestone_outputs`). A crash before the write loses both the crossing and the totals
that made it, so the retained messages cross it again after the restart; a crash after it finds
the crossing pending in the store. Two replicas that see the same messages in the same order
(one broker) make the same crossing records, so their InfluxDB points are the same point.

Plain synchronous code on the event loop, like `server.state.LineBoard`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from server.milestones import in_scope
from taktline.livebus import CounterMessage, parse_counter_topic
from taktline.model.milestones import Milestone
from taktline.model.paths import CounterPath


@dataclass(frozen=True, slots=True)
class Crossing:
    """One milestone value crossed by one counter update."""

    milestone: str
    name: str = field(compare=False)
    value: int
    scope: str = field(compare=False)
    counter: CounterPath = field(compare=False)
    ts: dt.datetime = field(compare=False)
    total: int = field(compare=False)
    """The scope's total right after the update that crossed it."""

    @property
    def key(self) -> tuple[str, int]:
        """What makes a crossing unique: (milestone id, value)."""
        return self.milestone, self.value


@dataclass(frozen=True, slots=True)
class MilestoneChanges:
    """What to store: counters' latest totals and the crossings made since the last take."""

    totals: Mapping[CounterPath, int] = field(default_factory=dict)
    crossings: tuple[Crossing, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.totals or self.crossings)


def crossed_values(milestone: Milestone, before: int, after: int) -> list[int]:
    """The values a scope total passes going from `before` to `after` (below V to at least V)."""
    if after <= before:
        return []
    if milestone.threshold is not None:
        return [milestone.threshold] if before < milestone.threshold <= after else []
    assert milestone.every is not None
    step = milestone.every
    first = (before // step + 1) * step
    return list(range(first, after + 1, step))


class CrossingDetector:
    """Sums the plant's milestone scopes from counter totals; reports each crossing once."""

    def __init__(self, milestones: Sequence[Milestone], counters: Iterable[CounterPath]):
        self.milestones = list(milestones)
        self._scopes: dict[CounterPath, list[int]] = {}
        for path in counters:
            indexes = [i for i, m in enumerate(self.milestones) if in_scope(m, path)]
            if indexes:
                self._scopes[path] = indexes
        self._scope_totals = [0] * len(self.milestones)
        self._totals: dict[CounterPath, int] = {}
        self._crossed: set[tuple[str, int]] = set()
        self._dirty: dict[CounterPath, int] = {}
        self._new: list[Crossing] = []

    def restore(
        self, totals: Mapping[CounterPath, int], crossed: Iterable[tuple[str, int]]
    ) -> None:
        """Take the stored totals and crossings (before the first live-bus message)."""
        self._crossed.update(crossed)
        for path, total in totals.items():
            if path in self._scopes:
                self._set(path, max(total, self._totals.get(path, total)))

    def total(self, milestone_id: str) -> int:
        """A milestone's scope total now (counters heard of so far)."""
        for milestone, total in zip(self.milestones, self._scope_totals, strict=True):
            if milestone.id == milestone_id:
                return total
        raise KeyError(milestone_id)

    def handle(self, topic: str, payload: bytes) -> list[Crossing]:
        """Take in one live-bus message; returns the crossings it made (usually none).

        Messages that are not valid counter messages of a counter in some milestone's scope
        are ignored here (the line board counts and logs them)."""
        path = parse_counter_topic(topic)
        if path is None or path not in self._scopes or not payload:
            return []
        try:
            message = CounterMessage.model_validate_json(payload)
        except ValidationError:
            return []
        return self.update(path, message.total, message.ts)

    def update(self, path: CounterPath, total: int, ts: dt.datetime) -> list[Crossing]:
        """A counter's total at `ts`; returns the crossings it made."""
        indexes = self._scopes.get(path)
        if indexes is None:
            return []
        before = self._totals.get(path)
        if before is not None and total <= before:
            return []
        self._dirty[path] = total
        if before is None:
            self._set(path, total)
            return []
        made: list[Crossing] = []
        for i in indexes:
            milestone = self.milestones[i]
            scope_before = self._scope_totals[i]
            scope_after = scope_before + total - before
            self._scope_totals[i] = scope_after
            for value in crossed_values(milestone, scope_before, scope_after):
                if (milestone.id, value) in self._crossed:
                    continue
                self._crossed.add((milestone.id, value))
                made.append(
                    Crossing(
                        milestone=milestone.id,
                        name=milestone.name or milestone.id,
                        value=value,
                        scope=milestone.scope,
                        counter=path,
                        ts=ts,
                        total=scope_after,
                    )
                )
        self._totals[path] = total
        self._new.extend(made)
        return made

    def take_changes(self) -> MilestoneChanges:
        """Totals changed and crossings made since the last call (to be stored together)."""
        changes = MilestoneChanges(self._dirty, tuple(self._new))
        self._dirty = {}
        self._new = []
        return changes

    def give_back(self, changes: MilestoneChanges) -> None:
        """Changes that could not be stored: take them again on the next `take_changes`."""
        for path, total in changes.totals.items():
            self._dirty[path] = max(total, self._dirty.get(path, total))
        self._new[:0] = changes.crossings

    def _set(self, path: CounterPath, total: int) -> None:
        """Set a counter's total without crossing anything (priming)."""
        change = total - self._totals.get(path, 0)
        self._totals[path] = total
        for i in self._scopes[path]:
            self._scope_totals[i] += change
