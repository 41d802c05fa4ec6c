"""Shift buckets, targets and stop windows from the plant model."""

from __future__ import annotations

import datetime as dt

from dashboards import plan
from taktline.config import load_plant
from taktline.model import Shift, ShiftCalendar, Target
from tests.conftest import EXAMPLE_PLANT

CALENDAR = load_plant(EXAMPLE_PLANT).shift_calendars["three-shift"]


def test_three_shifts_that_tile_the_day_are_the_buckets() -> None:
    assert plan.buckets(CALENDAR) == plan.Buckets("8h, 6h", "shift", "Europe/Berlin")
    night = CALENDAR.shifts[2]
    assert plan.shift_seconds(night) == 8 * 3600  # 22:00 to 06:00 crosses midnight
    assert plan.productive_seconds(night) == 8 * 3600 - 45 * 60


def test_plan_per_shift_and_hour_from_takt_or_units() -> None:
    takt = Target(takt_seconds=72)
    assert plan.planned_per_bucket(takt, CALENDAR) == 362  # 7 h 15 min / 72 s, whole units
    assert plan.planned_per_hour(takt, CALENDAR) == 50
    per_shift = Target(units_per_shift=420)
    assert plan.planned_per_bucket(per_shift, CALENDAR) == 420
    assert round(plan.takt_seconds(per_shift, CALENDAR), 2) == 62.14
    assert plan.stop_window_seconds(Target(takt_seconds=60), CALENDAR) == 180
    assert plan.stop_window_seconds(Target(takt_seconds=5), CALENDAR) == 60


def test_shifts_that_leave_gaps_are_counted_per_day() -> None:
    two = ShiftCalendar(
        timezone="Europe/Berlin",
        shifts=[
            Shift(name="early", start=dt.time(6), end=dt.time(14)),
            Shift(name="late", start=dt.time(14), end=dt.time(22)),
        ],
    )
    assert plan.buckets(two) == plan.Buckets("1d", "day", "Europe/Berlin")
    assert plan.planned_per_bucket(Target(takt_seconds=60), two) == 2 * 480
    weekdays = ShiftCalendar(
        timezone="UTC",
        shifts=[
            Shift(name=n, start=dt.time(h), end=dt.time((h + 12) % 24), days=["mon", "tue"])
            for n, h in (("day", 6), ("night", 18))
        ],
    )
    assert plan.buckets(weekdays).label == "day"


def test_durations_are_influxql_literals() -> None:
    assert [plan.duration(s) for s in (28800, 5400, 45, 0)] == ["8h", "90m", "45s", "0s"]
