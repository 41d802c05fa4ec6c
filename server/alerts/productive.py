"""Productive time: shift time outside breaks, across back-to-back shifts.

A stop is measured in productive time from its last unit, but never from before the start of
the run of back-to-back shifts that is running now: time outside shifts (a night off, a
weekend) and breaks never count, while a stop that goes on over a shift change (early -> late)
keeps counting.
"""

from __future__ import annotations

import datetime as dt

from taktline.model.shifts import ShiftCalendar
from taktline.shifts import ShiftWindow, shift_at

MAX_RUN_SHIFTS = 21
"""Shifts looked back for the start of a run (a week of three shifts); a run of continuous
operation longer than that starts at the oldest of them."""
_TICK = dt.timedelta(microseconds=1)


def run_start(calendar: ShiftCalendar, window: ShiftWindow) -> dt.datetime:
    """The start of the run of back-to-back (or overlapping) shifts that ends with `window`."""
    start = window.start
    for _ in range(MAX_RUN_SHIFTS):
        before = shift_at(calendar, start - _TICK)
        if before is None:
            break
        start = before.start
    return start


def productive_seconds(calendar: ShiftCalendar, begin: dt.datetime, end: dt.datetime) -> float:
    """Productive seconds from `begin` to `end` over back-to-back shifts (0 outside shifts;
    counting stops at the first gap between shifts)."""
    total = 0.0
    cursor = begin
    while cursor < end:
        window = shift_at(calendar, cursor)
        if window is None:
            break
        total += window.productive_elapsed(min(end, window.end)) - window.productive_elapsed(cursor)
        cursor = window.end
    return total


def in_break(window: ShiftWindow, now: dt.datetime) -> bool:
    """Whether `now` lies in one of the shift's breaks."""
    return any(begin <= now < finish for begin, finish in window.breaks)


def productive_start(window: ShiftWindow, now: dt.datetime, seconds: float) -> dt.datetime:
    """The instant from which `seconds` of productive time of `window` lead up to `now`
    (the shift start when the shift has had less)."""
    cursor = min(now, window.end)
    left = dt.timedelta(seconds=seconds)
    for begin, finish in reversed(window.breaks):
        if begin >= cursor:
            continue
        if finish < cursor:
            if cursor - finish >= left:
                return cursor - left
            left -= cursor - finish
        cursor = begin
    return max(window.start, cursor - left)
