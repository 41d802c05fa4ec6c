"""Line state built from live-bus messages: shift count, target, rate and status per line.

The board is plain synchronous code driven by the live-bus listener and read by the HTTP
routes, all on one event loop. Time comes from an injected clock, so tests can pin `now`.
Each line's running state lives in a `server.tracker.LineTracker` (the shift count rules are
in its docstring); the board routes messages to them, adds the plant-wide view (milestones,
edge status), hands changed shift state to the store (`take_changes`) and takes the
corrections as stored (`adopt_corrections`: the store adds them, for every replica).
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Literal

from pydantic import ValidationError

from server.milestones import NextMilestone, applies_to, eta, in_scope, next_value
from server.persisted import Changes, FinishedShift, ShiftRecord
from server.snapshot import LineAlert, LineSnapshot, LineStatus, StationCounter
from server.tracker import Acknowledgement, LineTracker, Refused
from taktline.livebus import (
    ROOT,
    CounterMessage,
    EdgeStatus,
    parse_counter_topic,
)
from taktline.model.milestones import Milestone
from taktline.model.paths import CounterPath
from taktline.model.plant import Plant
from taktline.shifts import ShiftWindow

__all__ = [
    "Clock",
    "LineAlert",
    "LineBoard",
    "LineSnapshot",
    "LineStatus",
    "Refused",
    "RejectReason",
    "StationCounter",
    "utc_now",
]

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
RejectReason = Literal["bad_topic", "unknown_counter", "malformed", "empty"]

MAX_LOGGED_TOPICS = 10_000
"""Topics remembered as failing (to log once each); past this, further ones are not logged."""

_EDGE_PREFIX = f"{ROOT}/_edge/"


def utc_now() -> dt.datetime:
    """The real clock."""
    return dt.datetime.now(dt.UTC)


class LineBoard:
    """Every line of the plant, fed with raw live-bus messages.

    Bad messages never raise: each is counted by reason in `rejected` and logged once per
    topic (and once more when that topic carries a good message again).
    """

    def __init__(self, plant: Plant, *, stale_after_s: float, clock: Clock = utc_now):
        self.plant = plant
        self._clock = clock
        self._stale_after = dt.timedelta(seconds=stale_after_s)
        started_at = clock()
        self._lines = {
            placed.line.id: LineTracker(
                placed, plant.shift_calendars[placed.line.shift_calendar], started_at
            )
            for placed in plant.lines()
        }
        self._by_counter = {path: self._lines[path.line] for path, _counter in plant.counters()}
        self._milestones: dict[str, list[tuple[Milestone, list[CounterPath]]]] = {
            placed.line.id: [
                (milestone, [path for path in self._by_counter if in_scope(milestone, path)])
                for milestone in plant.milestones
                if applies_to(milestone, placed)
            ]
            for placed in plant.lines()
        }
        self._edges: dict[str, EdgeStatus] = {}
        self._alerts: dict[str, tuple[LineAlert, ...]] = {}
        self.accepted = 0
        self.rejected: collections.Counter[RejectReason] = collections.Counter()
        self._failing_topics: set[str] = set()

    def line_ids(self) -> list[str]:
        """Line ids in plant file order."""
        return list(self._lines)

    def snapshot(self, line_id: str) -> LineSnapshot | None:
        """One line's state now, or None for an unknown line."""
        tracker = self._lines.get(line_id)
        if tracker is None:
            return None
        return self._snapshot(tracker, self._clock())

    def snapshots(self) -> list[LineSnapshot]:
        """Every line's state now."""
        now = self._clock()
        return [self._snapshot(tracker, now) for tracker in self._lines.values()]

    def edges(self) -> Iterator[EdgeStatus]:
        """The latest status of every edge heard from."""
        return iter(self._edges.values())

    def now(self) -> dt.datetime:
        """The board's clock."""
        return self._clock()

    def set_alerts(self, alerts: Mapping[str, Sequence[LineAlert]]) -> set[str]:
        """Take every line's active alerts (lines left out have none); returns the lines whose
        alerts changed."""
        new = {
            line: tuple(found) for line, found in alerts.items() if line in self._lines and found
        }
        changed = {
            line
            for line in new.keys() | self._alerts.keys()
            if new.get(line) != self._alerts.get(line)
        }
        self._alerts = new
        return changed

    def restore(self, records: Mapping[str, ShiftRecord]) -> None:
        """Take the stored shift state of each line (before the first live-bus message)."""
        now = self._clock()
        for line_id, record in records.items():
            tracker = self._lines.get(line_id)
            if tracker is not None:
                tracker.restore(record, now)

    def take_changes(self) -> Changes:
        """The lines' shift state changed since the last call, and the shifts finished since."""
        now = self._clock()
        current: dict[str, ShiftRecord | None] = {}
        finished: list[FinishedShift] = []
        for line_id, tracker in self._lines.items():
            tracker.roll(now)  # a shift that just ended goes into `finished`
            if tracker.dirty:
                current[line_id] = tracker.record(now)
                tracker.dirty = False
            finished.extend(tracker.finished)
            tracker.finished.clear()
        return Changes(current, tuple(finished))

    def give_back(self, changes: Changes) -> None:
        """Changes that could not be stored: take them again on the next `take_changes`."""
        for line_id in changes.current:
            self._lines[line_id].dirty = True
        for shift in reversed(changes.finished):
            self._lines[shift.line].finished.appendleft(shift)

    def counter_path(self, line_id: str, name: str) -> CounterPath:
        """The path of a line's counter `station/counter`; raises Refused when it has none."""
        path = self._lines[line_id].counter_path(name)
        if path is None:
            known = ", ".join(self._lines[line_id].counter_names())
            raise Refused("unknown_counter", f"line {line_id} has no counter '{name}' ({known})")
        return path

    def check_correction(
        self, line_id: str, name: str, delta: int
    ) -> tuple[CounterPath, ShiftWindow]:
        """Check a correction of `delta` to the current shift count of a line's counter
        `station/counter` (raises Refused; nothing changes: the store adds it and the board
        adopts the result); returns the counter and the shift it goes to."""
        path = self.counter_path(line_id, name)
        return path, self._lines[line_id].check_correction(path, delta, self._clock())

    def adopt_corrections(
        self, line_id: str, start: dt.datetime, corrections: Mapping[str, int]
    ) -> bool:
        """Take a line's stored corrections (`station/counter`, written by any replica) of the
        shift that began at `start`, if that shift runs; returns whether they changed."""
        tracker = self._lines.get(line_id)
        if tracker is None:
            return False
        tracker.roll(self._clock())
        return tracker.adopt_corrections(start, corrections)

    def counter_counts(self, path: CounterPath) -> tuple[int, int]:
        """A counter's shift count (corrections included) and its corrections this shift."""
        return self._lines[path.line].counter_counts(path)

    def acknowledge(self, line_id: str, by: str) -> tuple[Acknowledgement, Acknowledgement | None]:
        """Acknowledge the line's current stop; raises Refused when it is not stopped."""
        tracker = self._lines[line_id]
        now = self._clock()
        return tracker.acknowledge(self._snapshot(tracker, now), by, now)

    def undo_acknowledgement(self, line_id: str, previous: Acknowledgement | None) -> None:
        """Put back the acknowledgement an unstored one replaced."""
        self._lines[line_id].undo_acknowledgement(previous)

    def handle(self, topic: str, payload: bytes) -> set[str]:
        """Take in one live-bus message; returns the ids of the lines it changed."""
        now = self._clock()
        if topic.startswith(_EDGE_PREFIX):
            return self._handle_edge(topic, payload, now)
        path = parse_counter_topic(topic)
        if path is None:
            return self._reject(topic, "bad_topic", "not a counter topic")
        tracker = self._by_counter.get(path)
        if tracker is None:
            return self._reject(topic, "unknown_counter", "the plant has no such counter")
        if not payload:
            return self._reject(topic, "empty", "empty body (retained message cleared)")
        try:
            message = CounterMessage.model_validate_json(payload)
        except ValidationError as exc:
            return self._reject(topic, "malformed", _first_error(exc))
        self._accept(topic)
        tracker.apply(path, message, now)
        return {tracker.id}

    def _snapshot(self, tracker: LineTracker, now: dt.datetime) -> LineSnapshot:
        return tracker.snapshot(
            now,
            self._stale_after,
            self._offline(tracker.id),
            self._next_milestone(tracker, now),
            self._alerts.get(tracker.id, ()),
        )

    def _next_milestone(
        self, tracker: LineTracker, now: dt.datetime
    ) -> tuple[NextMilestone | None, dt.datetime | None]:
        """The applicable milestone reached soonest at the current rates (else the nearest)."""
        best: tuple[NextMilestone | None, dt.datetime | None] = (None, None)
        for milestone, paths in self._milestones[tracker.id]:
            totals = [
                message.total
                for path in paths
                if (message := self._by_counter[path].latest(path)) is not None
            ]
            if not totals:
                continue
            total = sum(totals)
            value = next_value(milestone, total)
            if value is None:
                continue
            rate = sum(self._by_counter[path].rate(path, now) for path in paths)
            candidate = NextMilestone(
                id=milestone.id,
                name=milestone.name,
                scope=milestone.scope,
                counter=milestone.counter,
                value=value,
                total=total,
                remaining=value - total,
                rate_per_hour=round(rate, 1),
            )
            when = eta(now, candidate.remaining, rate)
            if best[0] is None or _sooner((candidate, when), (best[0], best[1])):
                best = (candidate, when)
        return best

    def _handle_edge(self, topic: str, payload: bytes, now: dt.datetime) -> set[str]:
        parts = topic[len(_EDGE_PREFIX) :].split("/")
        if len(parts) != 2 or parts[1] != "status" or not parts[0]:
            return self._reject(topic, "bad_topic", "not an edge status topic")
        if not payload:
            return self._reject(topic, "empty", "empty body (retained message cleared)")
        try:
            status = EdgeStatus.model_validate_json(payload)
        except ValidationError as exc:
            return self._reject(topic, "malformed", _first_error(exc))
        self._accept(topic)
        edge_id = parts[0]
        previous = self._edges.get(edge_id)
        self._edges[edge_id] = status
        touched = {line for line in status.lines if line in self._lines}
        if previous is not None:
            touched |= {line for line in previous.lines if line in self._lines}
        if status.state == "online":
            for line in touched:
                self._lines[line].touch(min(status.ts, now))
        return touched

    def _offline(self, line_id: str) -> bool:
        """A line is offline when edges serve it and every one of them is offline."""
        states = [edge.state for edge in self._edges.values() if line_id in edge.lines]
        return bool(states) and all(state == "offline" for state in states)

    def _accept(self, topic: str) -> None:
        self.accepted += 1
        if topic in self._failing_topics:
            self._failing_topics.discard(topic)
            log.info("live bus: %s carries valid messages again", topic)

    def _reject(self, topic: str, reason: RejectReason, detail: str) -> set[str]:
        self.rejected[reason] += 1
        if topic not in self._failing_topics and len(self._failing_topics) < MAX_LOGGED_TOPICS:
            self._failing_topics.add(topic)
            log.warning("live bus: ignoring %s (%s: %s)", topic, reason, detail)
        return set()


def _sooner(
    a: tuple[NextMilestone, dt.datetime | None], b: tuple[NextMilestone, dt.datetime | None]
) -> bool:
    """Whether milestone `a` comes before `b`: a known ETA first, then the earlier one, then
    fewer units to go."""
    (a_next, a_eta), (b_next, b_eta) = a, b
    if (a_eta is None) != (b_eta is None):
        return a_eta is not None
    if a_eta is not None and b_eta is not None and a_eta != b_eta:
        return a_eta < b_eta
    return a_next.remaining < b_next.remaining


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return f"{where}: {error['msg']}"
