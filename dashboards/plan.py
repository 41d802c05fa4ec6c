"""The plan behind the panels: buckets that match the shifts, targets per bucket and per hour,
the window that counts as a stop. Pure functions of the plant model.

Wall-clock arithmetic on the calendar as written: weekdays, days off and daylight-saving days
are not modelled (a dashboard bucket is the same every day); `taktline.shifts` does that for
the live screens.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from taktline.model import Shift, ShiftCalendar, Target
from taktline.model.shifts import ALL_DAYS

DAY_S = 86_400
STOP_TAKTS = 3
"""A line is stopped when no unit came for this many takts (at least a minute)."""


@dataclass(frozen=True, slots=True)
class Buckets:
    """How to group units so one bucket is one shift (or one day), in the calendar's zone."""

    group_by: str
    """The argument of InfluxQL's GROUP BY time(), e.g. `8h, 6h` (interval, offset)."""
    label: str
    """What one bucket is: `shift` or `day`."""
    zone: str


def shift_seconds(shift: Shift) -> int:
    """Wall-clock length of a shift (an end at or before the start is the next day)."""
    return _span(_seconds(shift.start), _seconds(shift.end))


def productive_seconds(shift: Shift) -> int:
    """Length of a shift minus its breaks."""
    pauses = sum(_span(_seconds(b.start), _seconds(b.end)) for b in shift.breaks)
    return max(0, shift_seconds(shift) - pauses)


def buckets(calendar: ShiftCalendar) -> Buckets:
    """One bucket per shift when the shifts tile the day (equal length, back to back, every
    weekday), else one bucket per day."""
    lengths = {shift_seconds(s) for s in calendar.shifts}
    length = lengths.pop() if len(lengths) == 1 else 0
    starts = {_seconds(s.start) % length for s in calendar.shifts} if length else set()
    tiles = (
        length > 0
        and length * len(calendar.shifts) == DAY_S
        and len(starts) == 1
        and len({_seconds(s.start) for s in calendar.shifts}) == len(calendar.shifts)
        and all(set(s.days) == set(ALL_DAYS) for s in calendar.shifts)
    )
    if tiles:
        return Buckets(f"{duration(length)}, {duration(starts.pop())}", "shift", calendar.timezone)
    return Buckets("1d", "day", calendar.timezone)


def planned_per_bucket(target: Target, calendar: ShiftCalendar) -> float:
    """Units planned for one bucket of `buckets(calendar)`: a shift, or all shifts of a day."""
    per_shift = [_planned(target, shift) for shift in calendar.shifts]
    if buckets(calendar).label == "shift":
        return sum(per_shift) / len(per_shift)
    return float(sum(per_shift))


def planned_per_hour(target: Target, calendar: ShiftCalendar) -> float:
    """Units planned per productive hour."""
    return 3600 / takt_seconds(target, calendar)


def takt_seconds(target: Target, calendar: ShiftCalendar) -> float:
    """The takt, given or implied by units per shift over the mean productive shift time."""
    if target.takt_seconds is not None:
        return target.takt_seconds
    assert target.units_per_shift is not None
    mean = sum(productive_seconds(s) for s in calendar.shifts) / len(calendar.shifts)
    return mean / target.units_per_shift


def stop_window_seconds(target: Target, calendar: ShiftCalendar) -> int:
    """Bucket length in which no unit means a stop: STOP_TAKTS takts, in whole minutes."""
    minutes = math.ceil(STOP_TAKTS * takt_seconds(target, calendar) / 60)
    return max(1, minutes) * 60


def duration(seconds: int) -> str:
    """An InfluxQL duration literal: `8h`, `90m`, `45s`, `0s`."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _planned(target: Target, shift: Shift) -> float:
    if target.units_per_shift is not None:
        return float(target.units_per_shift)
    assert target.takt_seconds is not None
    return float(productive_seconds(shift) // target.takt_seconds)


def _seconds(when: dt.time) -> int:
    return when.hour * 3600 + when.minute * 60 + when.second


def _span(start: int, end: int) -> int:
    return (end - start) % DAY_S or DAY_S
