"""Line state built from live-bus messages: shift count, target, rate and status per line.

The board is plain synchronous code driven by the live-bus listener and read by the HTTP
routes, all on one event loop. Time comes from an injected clock, so tests can pin `now`.

Shift count baseline (the total at the start of the current shift):

- the first message seen in the current shift whose `ts` lies inside the shift sets the
  baseline to `total - delta` (the total before that change);
- a message whose `ts` is before the shift start sets the baseline to its `total` (nothing
  of it belongs to this shift); a retained message from the last shift does exactly that;
- at a shift change the baseline becomes the latest known total.

Known gap: when the server starts in the middle of a shift, units made between the shift start
and the last message before the restart are missed until shift counts are persisted.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
from collections.abc import Callable, Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taktline.livebus import (
    ROOT,
    CounterMessage,
    EdgeStatus,
    parse_counter_topic,
)
from taktline.model.paths import CounterPath
from taktline.model.plant import PlacedLine, Plant
from taktline.model.shifts import ShiftCalendar
from taktline.shifts import ShiftWindow, shift_at, shift_target, target_so_far

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
LineStatus = Literal["running", "stopped", "no data", "offline", "no shift"]
RejectReason = Literal["bad_topic", "unknown_counter", "malformed", "empty"]

RATE_WINDOW = dt.timedelta(minutes=15)
MIN_RATE_SPAN = dt.timedelta(minutes=1)
STOPPED_AFTER_TAKTS = 3
"""A fed line is `stopped` when its output counted nothing for this many takts (at least a
minute): three missed units at the line's pace is a stop, one is a slow cycle."""
MIN_STOP = dt.timedelta(minutes=1)
MAX_RATE_SAMPLES = 20_000
"""Deltas kept for the rate; when full the oldest are dropped (policy: drop oldest)."""

MAX_LOGGED_TOPICS = 10_000
"""Topics remembered as failing (to log once each); past this, further ones are not logged."""

_EDGE_PREFIX = f"{ROOT}/_edge/"


def utc_now() -> dt.datetime:
    """The real clock."""
    return dt.datetime.now(dt.UTC)


class StationCounter(BaseModel):
    """The latest value of one counter of a line."""

    model_config = ConfigDict(frozen=True)

    station: str
    counter: str
    total: int
    delta: int
    quality: str
    ts: dt.datetime


class LineSnapshot(BaseModel):
    """What a line screen shows, as `GET /api/lines` returns it."""

    model_config = ConfigDict(frozen=True)

    line: str = Field(description="The line id; its screen is /lines/{line}.")
    name: str
    site: str
    area: str
    timezone: str = Field(description="The shift calendar's time zone (for local times).")
    shift: str | None = Field(description="Name of the running shift, null outside shifts.")
    shift_start: dt.datetime | None
    shift_end: dt.datetime | None
    shift_progress: float | None = Field(description="Share of the shift's time passed, 0..1.")
    shift_count: int = Field(description="Units of the output counter in the current shift.")
    target: int | None = Field(description="Units planned for the whole shift.")
    target_so_far: float | None = Field(description="Units planned up to now (breaks excluded).")
    total: int | None = Field(description="Lifetime total of the output counter.")
    rate_per_hour: float = Field(description="Units per hour over the last 15 minutes.")
    status: LineStatus
    updated_at: dt.datetime | None = Field(description="Last update from the line (or its edge).")
    stopped_since: dt.datetime | None = Field(
        description="While `stopped`: when the output counted its last unit."
    )
    output: str = Field(description="The output counter: station/counter.")
    stations: list[StationCounter]


class LineTracker:
    """The running state of one line."""

    def __init__(self, placed: PlacedLine, calendar: ShiftCalendar, started_at: dt.datetime):
        self.placed = placed
        self.calendar = calendar
        self.output = placed.output_path()
        self._started_at = started_at
        self._counters: dict[CounterPath, CounterMessage] = {}
        self._window: ShiftWindow | None = None
        self._window_known = False
        self._baseline: int | None = None
        self._deltas: collections.deque[tuple[dt.datetime, int]] = collections.deque(
            maxlen=MAX_RATE_SAMPLES
        )
        self.last_seen: dt.datetime | None = None
        self.last_unit_at: dt.datetime | None = None

    @property
    def id(self) -> str:
        """The line id."""
        return self.placed.line.id

    def apply(self, path: CounterPath, message: CounterMessage, now: dt.datetime) -> None:
        """Take in one counter message of this line received at `now`."""
        self._roll(now)
        self._counters[path] = message
        seen_at = min(message.ts, now)
        self.touch(seen_at)
        if path != self.output:
            return
        window = self._window
        if window is not None:
            if message.ts < window.start:
                self._baseline = max(self._baseline or 0, message.total)
            elif self._baseline is None:
                self._baseline = message.total - message.delta
        if message.delta > 0:
            self.last_unit_at = max(seen_at, self.last_unit_at or seen_at)
            if seen_at >= self._started_at:
                self._deltas.append((seen_at, message.delta))

    def touch(self, seen_at: dt.datetime) -> None:
        """Record that the line (or the edge serving it) was heard from at `seen_at`."""
        if self.last_seen is None or seen_at > self.last_seen:
            self.last_seen = seen_at

    def snapshot(self, now: dt.datetime, stale_after: dt.timedelta, offline: bool) -> LineSnapshot:
        """The line's state at `now`."""
        self._roll(now)
        window = self._window
        line = self.placed.line
        output = self._counters.get(self.output)
        total = output.total if output else None
        shift_count = 0
        if window is not None and total is not None and self._baseline is not None:
            shift_count = max(0, total - self._baseline)
        status = self._status(now, window, stale_after, offline)
        return LineSnapshot(
            line=line.id,
            name=line.name,
            site=self.placed.site.id,
            area=self.placed.area.id,
            timezone=self.calendar.timezone,
            shift=window.name if window else None,
            shift_start=window.start if window else None,
            shift_end=window.end if window else None,
            shift_progress=round(window.progress(now), 4) if window else None,
            shift_count=shift_count,
            target=shift_target(line.target, window) if window else None,
            target_so_far=round(target_so_far(line.target, window, now), 1) if window else None,
            total=total,
            rate_per_hour=round(self._rate(now), 1),
            status=status,
            updated_at=self.last_seen,
            stopped_since=(self._stopped_since(window) if window and status == "stopped" else None),
            output=line.output,
            stations=[
                StationCounter(
                    station=path.station,
                    counter=path.counter,
                    total=message.total,
                    delta=message.delta,
                    quality=message.quality.value,
                    ts=message.ts,
                )
                for path, message in sorted(self._counters.items())
            ],
        )

    def _roll(self, now: dt.datetime) -> None:
        """Follow the calendar: on a shift change the baseline becomes the latest total."""
        window = shift_at(self.calendar, now)
        if self._window_known and window == self._window:
            return
        output = self._counters.get(self.output)
        if self._window_known:
            self._baseline = output.total if output else None
        self._window = window
        self._window_known = True

    def _rate(self, now: dt.datetime) -> float:
        since = max(now - RATE_WINDOW, self._started_at)
        while self._deltas and self._deltas[0][0] < now - RATE_WINDOW:
            self._deltas.popleft()
        units = sum(delta for at, delta in self._deltas if since <= at <= now)
        span = max(now - since, MIN_RATE_SPAN)
        return units * 3600 / span.total_seconds()

    def _status(
        self,
        now: dt.datetime,
        window: ShiftWindow | None,
        stale_after: dt.timedelta,
        offline: bool,
    ) -> LineStatus:
        if offline:
            return "offline"
        if window is None:
            return "no shift"
        if self.last_seen is None or now - self.last_seen > stale_after:
            return "no data"
        if now - self._stopped_since(window) >= self._stop_after(window):
            return "stopped"
        return "running"

    def _stopped_since(self, window: ShiftWindow) -> dt.datetime:
        """The last unit, or the shift start (or server start) when none came since."""
        since = max(window.start, self._started_at)
        return max(self.last_unit_at, since) if self.last_unit_at else since

    def _stop_after(self, window: ShiftWindow) -> dt.timedelta:
        target = self.placed.line.target
        if target.takt_seconds is not None:
            takt_s = target.takt_seconds
        else:
            takt_s = window.productive_seconds() / max(shift_target(target, window), 1)
        return max(dt.timedelta(seconds=STOPPED_AFTER_TAKTS * takt_s), MIN_STOP)


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
        self._edges: dict[str, EdgeStatus] = {}
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
        return tracker.snapshot(self._clock(), self._stale_after, self._offline(line_id))

    def snapshots(self) -> list[LineSnapshot]:
        """Every line's state now."""
        now = self._clock()
        return [
            tracker.snapshot(now, self._stale_after, self._offline(line_id))
            for line_id, tracker in self._lines.items()
        ]

    def edges(self) -> Iterator[EdgeStatus]:
        """The latest status of every edge heard from."""
        return iter(self._edges.values())

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


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return f"{where}: {error['msg']}"
