"""Shift calendar math: which shift runs at an instant, its productive time and its target.

Pure functions over the plant model (`taktline.model.shifts`), no I/O. Wall-clock times of a
calendar are read in its time zone; all arithmetic is done on UTC instants, so a night shift
across a daylight-saving change is one hour shorter (spring) or longer (autumn) than its
wall-clock span. A wall-clock time that does not exist on a spring-forward night is read with
the offset before the change (zoneinfo's `fold=0`).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

from taktline.model.assets import Target
from taktline.model.shifts import Shift, ShiftCalendar

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class ShiftWindow:
    """One occurrence of a shift: UTC start and end (end exclusive) and its break windows."""

    name: str
    start: dt.datetime
    end: dt.datetime
    breaks: tuple[tuple[dt.datetime, dt.datetime], ...] = ()

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a shift window needs aware datetimes")
        if self.end <= self.start:
            raise ValueError("a shift window must end after it starts")

    def contains(self, when: dt.datetime) -> bool:
        """Whether `when` lies in [start, end)."""
        return self.start <= when < self.end

    def productive_seconds(self) -> float:
        """Length of the shift minus its breaks, in seconds."""
        return self.productive_elapsed(self.end)

    def productive_elapsed(self, now: dt.datetime) -> float:
        """Productive seconds from the shift start up to `now` (clamped to the shift)."""
        upto = min(max(now, self.start), self.end)
        elapsed = (upto - self.start).total_seconds()
        for begin, finish in self.breaks:
            overlap = (min(finish, upto) - begin).total_seconds()
            elapsed -= max(0.0, overlap)
        return elapsed

    def progress(self, now: dt.datetime) -> float:
        """Share of the shift's wall-clock time that has passed at `now`, 0..1."""
        total = (self.end - self.start).total_seconds()
        return min(1.0, max(0.0, (now - self.start).total_seconds() / total))


def shift_at(calendar: ShiftCalendar, when: dt.datetime) -> ShiftWindow | None:
    """The shift of `calendar` running at the aware instant `when`, or None.

    A shift belongs to the day it starts: `days` and `days_off` name that day, so the night
    shift of Friday 22:00 to Saturday 06:00 runs when `fri` is listed. When shifts overlap,
    the first in calendar order wins.
    """
    if when.tzinfo is None:
        raise ValueError("shift_at needs an aware datetime")
    zone = calendar.zone
    today = when.astimezone(zone).date()
    for shift in calendar.shifts:
        for day in (today - dt.timedelta(days=1), today):
            if _WEEKDAYS[day.weekday()] not in shift.days or day in calendar.days_off:
                continue
            window = _window(shift, day, zone)
            if window.contains(when):
                return window
    return None


def shift_target(target: Target, window: ShiftWindow) -> int:
    """Units planned for the whole shift: productive seconds / takt, or `units_per_shift`."""
    if target.units_per_shift is not None:
        return target.units_per_shift
    assert target.takt_seconds is not None
    return int(window.productive_seconds() // target.takt_seconds)


def target_so_far(target: Target, window: ShiftWindow, now: dt.datetime) -> float:
    """Units planned up to `now`, prorated by productive elapsed time (flat during breaks)."""
    elapsed = window.productive_elapsed(now)
    if target.takt_seconds is not None:
        return min(elapsed / target.takt_seconds, float(shift_target(target, window)))
    productive = window.productive_seconds()
    if productive <= 0:
        return 0.0
    return shift_target(target, window) * elapsed / productive


def _window(shift: Shift, day: dt.date, zone: zoneinfo.ZoneInfo) -> ShiftWindow:
    start_local = dt.datetime.combine(day, shift.start, tzinfo=zone)
    end_day = day + dt.timedelta(days=1) if shift.end <= shift.start else day
    start = _utc(start_local)
    end = _utc(dt.datetime.combine(end_day, shift.end, tzinfo=zone))
    breaks: list[tuple[dt.datetime, dt.datetime]] = []
    for pause in shift.breaks:
        pause_day = day + dt.timedelta(days=1) if pause.start < shift.start else day
        pause_end_day = pause_day + dt.timedelta(days=1) if pause.end <= pause.start else pause_day
        begin = max(start, _utc(dt.datetime.combine(pause_day, pause.start, tzinfo=zone)))
        finish = min(end, _utc(dt.datetime.combine(pause_end_day, pause.end, tzinfo=zone)))
        if finish > begin:
            breaks.append((begin, finish))
    return ShiftWindow(shift.name, start, end, _merged(breaks))


def _merged(
    breaks: list[tuple[dt.datetime, dt.datetime]],
) -> tuple[tuple[dt.datetime, dt.datetime], ...]:
    """Sorted breaks with overlaps joined, so no pause is subtracted twice."""
    merged: list[tuple[dt.datetime, dt.datetime]] = []
    for begin, finish in sorted(breaks):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], finish))
        else:
            merged.append((begin, finish))
    return tuple(merged)


def _utc(local: dt.datetime) -> dt.datetime:
    return local.astimezone(dt.UTC)
