"""The running state of one line: per-counter shift baselines, rates, corrections, its stop.

Shift count baseline of each counter (its total at the start of the current shift):

- a baseline restored from the state store for the running shift is kept;
- the first message seen in the current shift whose `ts` lies inside the shift sets the
  baseline to `total - delta` (the total before that change);
- a message whose `ts` is before the shift start sets the baseline to its `total` (nothing
  of it belongs to this shift); a retained message from the last shift does exactly that;
- at a shift change the baseline becomes the latest known total.
"""

from __future__ import annotations

import collections
import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from server.milestones import NextMilestone
from server.persisted import FinishedShift, ShiftRecord
from server.snapshot import LineAlert, LineSnapshot, LineStatus, StationCounter
from server.yields import line_yield
from taktline.livebus import CounterMessage
from taktline.model.paths import CounterPath
from taktline.model.plant import PlacedLine
from taktline.model.shifts import ShiftCalendar
from taktline.shifts import ShiftWindow, shift_at, shift_target, target_so_far

RATE_WINDOW = dt.timedelta(minutes=15)
MIN_RATE_SPAN = dt.timedelta(minutes=1)
STOPPED_AFTER_TAKTS = 3
"""A fed line is `stopped` when its output counted nothing for this many takts (at least a
minute): three missed units at the line's pace is a stop, one is a slow cycle."""
MIN_STOP = dt.timedelta(minutes=1)
MAX_RATE_SAMPLES = 20_000
"""Deltas kept per counter for the rate; when full the oldest are dropped (policy: drop oldest)."""
MAX_PENDING_SHIFTS = 100
"""Finished shifts waiting to be stored, per line; when full the oldest are dropped."""

RefusalCode = Literal["unknown_counter", "no_shift", "negative_count", "not_stopped"]


class Refused(ValueError):
    """A write that the line's state does not allow; nothing was changed."""

    def __init__(self, code: RefusalCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """Someone acknowledged the stop that began at `stop_since`."""

    stop_since: dt.datetime
    by: str
    at: dt.datetime


class Rate:
    """Units per hour over a sliding window, with a running sum (O(1) per read and write)."""

    __slots__ = ("_samples", "_sum")

    def __init__(self) -> None:
        self._samples: collections.deque[tuple[dt.datetime, int]] = collections.deque(
            maxlen=MAX_RATE_SAMPLES
        )
        self._sum = 0

    def add(self, at: dt.datetime, units: int) -> None:
        """Count `units` made at `at`."""
        if len(self._samples) == self._samples.maxlen:
            self._sum -= self._samples[0][1]
        self._samples.append((at, units))
        self._sum += units

    def per_hour(self, now: dt.datetime, started_at: dt.datetime) -> float:
        """Units per hour since `now - RATE_WINDOW` (or `started_at`, at least a minute)."""
        while self._samples and self._samples[0][0] < now - RATE_WINDOW:
            self._sum -= self._samples.popleft()[1]
        since = max(now - RATE_WINDOW, started_at)
        span = max(now - since, MIN_RATE_SPAN)
        return self._sum * 3600 / span.total_seconds()


class LineTracker:
    """The running state of one line."""

    def __init__(self, placed: PlacedLine, calendar: ShiftCalendar, started_at: dt.datetime):
        self.placed = placed
        self.calendar = calendar
        self.output = placed.output_path()
        self._named = {
            f"{station.id}/{counter.name}": CounterPath(
                placed.site.id, placed.area.id, placed.line.id, station.id, counter.name
            )
            for station in placed.line.stations
            for counter in station.counters
        }
        self._yield = line_yield(placed.line)
        self._started_at = started_at
        self._counters: dict[CounterPath, CounterMessage] = {}
        self._baselines: dict[CounterPath, int] = {}
        self._corrections: dict[CounterPath, int] = {}
        self._rates: dict[CounterPath, Rate] = {}
        self._window: ShiftWindow | None = None
        self._window_known = False
        self._ack: Acknowledgement | None = None
        self.last_seen: dt.datetime | None = None
        self.last_unit_at: dt.datetime | None = None
        self.dirty = False
        """Changed since the last `record()` was taken for the store."""
        self.finished: collections.deque[FinishedShift] = collections.deque(
            maxlen=MAX_PENDING_SHIFTS
        )

    @property
    def id(self) -> str:
        """The line id."""
        return self.placed.line.id

    def counter_path(self, name: str) -> CounterPath | None:
        """The path of the line's counter `station/counter`, or None."""
        return self._named.get(name)

    def counter_names(self) -> list[str]:
        """The line's counters as `station/counter`, in plant file order."""
        return list(self._named)

    def latest(self, path: CounterPath) -> CounterMessage | None:
        """The latest message of one of the line's counters."""
        return self._counters.get(path)

    def rate(self, path: CounterPath, now: dt.datetime) -> float:
        """Units per hour of one of the line's counters."""
        rate = self._rates.get(path)
        return rate.per_hour(now, self._started_at) if rate is not None else 0.0

    def restore(self, record: ShiftRecord, now: dt.datetime) -> None:
        """Take the stored state of a shift: its baselines if it still runs, else finish it."""
        window = shift_at(self.calendar, now)
        self._window, self._window_known = window, True
        if window is not None and (record.shift, record.start) == (window.name, window.start):
            self._baselines = self._by_path(record.baselines)
            self._corrections = self._by_path(record.corrections)
            return
        self.finished.append(
            FinishedShift(
                line=self.id,
                shift=record.shift,
                start=record.start,
                end=record.end,
                count=record.output_count(),
                target=record.target,
                corrections=record.corrections.get(record.output, 0),
                complete=False,
            )
        )
        self.dirty = True

    def apply(self, path: CounterPath, message: CounterMessage, now: dt.datetime) -> None:
        """Take in one counter message of this line received at `now`."""
        self.roll(now)
        self._counters[path] = message
        self.dirty = True
        seen_at = min(message.ts, now)
        self.touch(seen_at)
        window = self._window
        if window is not None:
            if message.ts < window.start:
                self._baselines[path] = max(self._baselines.get(path, 0), message.total)
            elif path not in self._baselines:
                self._baselines[path] = message.total - message.delta
        if message.delta <= 0:
            return
        if seen_at >= self._started_at:
            self._rates.setdefault(path, Rate()).add(seen_at, message.delta)
        if path == self.output:
            self.last_unit_at = max(seen_at, self.last_unit_at or seen_at)

    def touch(self, seen_at: dt.datetime) -> None:
        """Record that the line (or the edge serving it) was heard from at `seen_at`."""
        if self.last_seen is None or seen_at > self.last_seen:
            self.last_seen = seen_at

    def check_correction(self, path: CounterPath, delta: int, now: dt.datetime) -> ShiftWindow:
        """Check a manual correction of a counter's shift count (nothing changes: the store
        adds it, see `adopt_corrections`); returns the shift it goes to."""
        self.roll(now)
        window = self._window
        if window is None:
            raise Refused("no_shift", f"no shift is running on line {self.id}: nothing to correct")
        count = self.shift_count(path)
        if count + delta < 0:
            raise Refused(
                "negative_count",
                f"{path.station}/{path.counter} counted {count} this shift: a correction of"
                f" {delta} would make it negative",
            )
        return window

    def adopt_corrections(self, start: dt.datetime, corrections: Mapping[str, int]) -> bool:
        """Take the stored corrections (`station/counter`) of the shift that began at `start`,
        if it is the running one; returns whether they changed."""
        if self._window is None or self._window.start != start:
            return False
        adopted = self._by_path(corrections)
        if adopted == self._corrections:
            return False
        self._corrections = adopted
        return True

    def acknowledge(
        self, snapshot: LineSnapshot, by: str, at: dt.datetime
    ) -> tuple[Acknowledgement, Acknowledgement | None]:
        """Acknowledge the stop `snapshot` shows; returns the new and the replaced one."""
        if snapshot.status != "stopped" or snapshot.stopped_since is None:
            raise Refused(
                "not_stopped", f"line {self.id} is not stopped (status: {snapshot.status})"
            )
        previous = self._ack
        self._ack = Acknowledgement(snapshot.stopped_since, by, at)
        return self._ack, previous

    def undo_acknowledgement(self, previous: Acknowledgement | None) -> None:
        """Put back the acknowledgement an unstored one replaced."""
        self._ack = previous

    def shift_count(self, path: CounterPath) -> int:
        """Units of a counter in the current shift (corrections included, never below 0)."""
        message = self._counters.get(path)
        baseline = self._baselines.get(path)
        counted = max(0, message.total - baseline) if message and baseline is not None else 0
        return max(0, counted + self._corrections.get(path, 0))

    def counter_counts(self, path: CounterPath) -> tuple[int, int]:
        """A counter's shift count (corrections included) and its corrections this shift."""
        return self.shift_count(path), self._corrections.get(path, 0)

    def record(self, now: dt.datetime) -> ShiftRecord | None:
        """The running shift's state for the store, or None outside shifts."""
        self.roll(now)
        window = self._window
        if window is None:
            return None
        return ShiftRecord(
            line=self.id,
            shift=window.name,
            start=window.start,
            end=window.end,
            target=shift_target(self.placed.line.target, window),
            output=self.placed.line.output,
            baselines=self._by_name(self._baselines),
            latest=self._by_name({path: m.total for path, m in self._counters.items()}),
            corrections=self._by_name(self._corrections),
        )

    def snapshot(
        self,
        now: dt.datetime,
        stale_after: dt.timedelta,
        offline: bool,
        milestone: tuple[NextMilestone | None, dt.datetime | None] = (None, None),
        alerts: Sequence[LineAlert] = (),
    ) -> LineSnapshot:
        """The line's state at `now`, with its active `alerts`."""
        self.roll(now)
        window = self._window
        line = self.placed.line
        output = self._counters.get(self.output)
        shift_count = self.shift_count(self.output) if window else 0
        so_far = round(target_so_far(line.target, window, now), 1) if window else None
        rate = round(self.rate(self.output, now), 1)
        status = self._status(now, window, stale_after, offline)
        stopped_since = self._stopped_since(window) if window and status == "stopped" else None
        ack = self._ack if self._ack and self._ack.stop_since == stopped_since else None
        takt_planned = self._takt_planned(window)
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
            target_so_far=so_far,
            total=output.total if output else None,
            rate_per_hour=rate,
            status=status,
            updated_at=self.last_seen,
            stopped_since=stopped_since,
            output=line.output,
            stations=[
                StationCounter(
                    station=path.station,
                    counter=path.counter,
                    total=message.total,
                    delta=message.delta,
                    quality=message.quality.value,
                    ts=message.ts,
                    shift_count=self.shift_count(path) if window else None,
                    corrections=self._corrections.get(path, 0),
                )
                for path, message in sorted(self._counters.items())
            ],
            ahead_by=shift_count - math.floor(so_far) if so_far is not None else None,
            takt_planned_s=round(takt_planned, 1) if takt_planned is not None else None,
            takt_actual_s=round(3600 / rate, 1) if rate > 0 else None,
            yield_percent=self._yield_percent() if window else None,
            yield_basis=self._yield.basis if self._yield else None,
            next_milestone=milestone[0],
            next_milestone_eta=milestone[1],
            corrections=self._corrections.get(self.output, 0),
            acknowledged_by=ack.by if ack else None,
            acknowledged_at=ack.at if ack else None,
            last_unit_at=self.last_unit_at,
            alerts=list(alerts),
        )

    def roll(self, now: dt.datetime) -> None:
        """Follow the calendar: on a shift change the baselines become the latest totals."""
        window = shift_at(self.calendar, now)
        if self._window_known and window == self._window:
            return
        if self._window_known:
            if self._window is not None:
                self.finished.append(self._finish(self._window))
            self._baselines = {path: message.total for path, message in self._counters.items()}
            self._corrections = {}
            self._ack = None
        self._window = window
        self._window_known = True
        self.dirty = True

    def _finish(self, window: ShiftWindow) -> FinishedShift:
        return FinishedShift(
            line=self.id,
            shift=window.name,
            start=window.start,
            end=window.end,
            count=self.shift_count(self.output),
            target=shift_target(self.placed.line.target, window),
            corrections=self._corrections.get(self.output, 0),
            complete=True,
        )

    def _yield_percent(self) -> float | None:
        if self._yield is None:
            return None
        site, area, line = self.placed.site.id, self.placed.area.id, self.id
        return self._yield.percent(
            lambda station, counter: self.shift_count(
                CounterPath(site, area, line, station, counter)
            )
        )

    def _takt_planned(self, window: ShiftWindow | None) -> float | None:
        target = self.placed.line.target
        if target.takt_seconds is not None:
            return target.takt_seconds
        if window is None:
            return None
        return window.productive_seconds() / max(shift_target(target, window), 1)

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
        takt_s = self._takt_planned(window) or 0.0
        return max(dt.timedelta(seconds=STOPPED_AFTER_TAKTS * takt_s), MIN_STOP)

    def _by_path(self, values: Mapping[str, int]) -> dict[CounterPath, int]:
        return {self._named[name]: value for name, value in values.items() if name in self._named}

    @staticmethod
    def _by_name(values: dict[CounterPath, int]) -> dict[str, int]:
        return {f"{path.station}/{path.counter}": value for path, value in values.items()}
