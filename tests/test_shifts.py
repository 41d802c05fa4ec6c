"""Shift calendar math: midnight crossings, breaks, days off, daylight-saving nights."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from taktline.config import load_plant
from taktline.model import ShiftCalendar, Target
from taktline.shifts import ShiftWindow, shift_at, shift_target, target_so_far
from tests.conftest import EXAMPLE_PLANT

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
TAKT_60 = Target(takt_seconds=60)


def berlin(year: int, month: int, day: int, hour: int, minute: int) -> dt.datetime:
    """A wall-clock time in Berlin (fold=0 where it is ambiguous)."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def utc(year: int, month: int, day: int, hour: int, minute: int) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)


@pytest.fixture
def three_shift() -> ShiftCalendar:
    """The example plant's calendar: early, late, night; 25/26 Dec and 1 Jan off."""
    return load_plant(EXAMPLE_PLANT).shift_calendars["three-shift"]


def test_early_shift_window_and_productive_time(three_shift: ShiftCalendar) -> None:
    window = shift_at(three_shift, berlin(2026, 11, 25, 10, 0))  # a Wednesday
    assert window is not None
    assert window.name == "early"
    assert window.start == berlin(2026, 11, 25, 6, 0)
    assert window.end == berlin(2026, 11, 25, 14, 0)
    assert window.productive_seconds() == 8 * 3600 - 45 * 60
    assert shift_target(TAKT_60, window) == 435


def test_shift_end_is_exclusive(three_shift: ShiftCalendar) -> None:
    window = shift_at(three_shift, berlin(2026, 11, 25, 14, 0))
    assert window is not None and window.name == "late"


def test_night_shift_crosses_midnight_and_belongs_to_its_start_day() -> None:
    calendar = ShiftCalendar.model_validate(
        {
            "timezone": "Europe/Berlin",
            "shifts": [{"name": "night", "start": "22:00", "end": "06:00", "days": ["wed"]}],
        }
    )
    after_midnight = shift_at(calendar, berlin(2026, 11, 26, 3, 0))  # Thursday 03:00
    assert after_midnight is not None
    assert after_midnight.start == berlin(2026, 11, 25, 22, 0)
    assert after_midnight.end == berlin(2026, 11, 26, 6, 0)
    assert shift_at(calendar, berlin(2026, 11, 26, 23, 0)) is None  # Thursday's night: not listed
    assert shift_at(calendar, berlin(2026, 11, 25, 3, 0)) is None  # Tuesday's night: not listed


def test_break_after_midnight_holds_the_target_flat(three_shift: ShiftCalendar) -> None:
    window = shift_at(three_shift, berlin(2026, 11, 26, 1, 15))
    assert window is not None and window.name == "night"
    assert window.breaks[0] == (berlin(2026, 11, 26, 1, 0), berlin(2026, 11, 26, 1, 30))
    in_break = window.productive_elapsed(berlin(2026, 11, 26, 1, 15))
    assert in_break == 3 * 3600
    assert window.productive_elapsed(berlin(2026, 11, 26, 1, 30)) == in_break
    assert target_so_far(TAKT_60, window, berlin(2026, 11, 26, 1, 15)) == 180.0
    assert target_so_far(TAKT_60, window, berlin(2026, 11, 26, 2, 30)) == 240.0
    assert window.productive_elapsed(berlin(2026, 11, 26, 12, 0)) == window.productive_seconds()


def test_days_off_count_by_the_shift_start_day(three_shift: ShiftCalendar) -> None:
    assert shift_at(three_shift, berlin(2026, 12, 25, 10, 0)) is None  # early on Christmas Day
    night_before = shift_at(three_shift, berlin(2026, 12, 25, 3, 0))  # started on 24 Dec
    assert night_before is not None and night_before.start == berlin(2026, 12, 24, 22, 0)
    assert shift_at(three_shift, berlin(2026, 12, 27, 3, 0)) is None  # started 26 Dec: off
    first_back = shift_at(three_shift, berlin(2026, 12, 27, 6, 0))
    assert first_back is not None and first_back.name == "early"


def test_spring_forward_night_is_an_hour_shorter(three_shift: ShiftCalendar) -> None:
    window = shift_at(three_shift, berlin(2026, 3, 29, 4, 0))  # clocks 02:00 -> 03:00 CEST
    assert window is not None and window.name == "night"
    assert window.start == utc(2026, 3, 28, 21, 0)
    assert window.end == utc(2026, 3, 29, 4, 0)
    assert window.productive_seconds() == 7 * 3600 - 45 * 60
    assert shift_target(TAKT_60, window) == 375


def test_fall_back_night_is_an_hour_longer(three_shift: ShiftCalendar) -> None:
    first_0230 = utc(2026, 10, 25, 0, 30)  # 02:30 CEST
    second_0230 = utc(2026, 10, 25, 1, 30)  # 02:30 CET, an hour later
    window = shift_at(three_shift, first_0230)
    assert window is not None and window == shift_at(three_shift, second_0230)
    assert window.end - window.start == dt.timedelta(hours=9)
    assert window.productive_seconds() == 9 * 3600 - 45 * 60
    assert shift_target(TAKT_60, window) == 495
    assert window.productive_elapsed(second_0230) - window.productive_elapsed(first_0230) == 3600


def test_units_per_shift_target_is_prorated() -> None:
    start = utc(2026, 11, 25, 5, 0)
    window = ShiftWindow(
        "early",
        start,
        start + dt.timedelta(hours=8),
        ((start + dt.timedelta(hours=4), start + dt.timedelta(hours=5)),),
    )
    target = Target(units_per_shift=420)
    assert shift_target(target, window) == 420
    assert target_so_far(target, window, start + dt.timedelta(hours=3.5)) == 210.0
    assert target_so_far(target, window, start + dt.timedelta(hours=4.5)) == 240.0
    assert target_so_far(target, window, start + dt.timedelta(hours=9)) == 420.0
    assert target_so_far(target, window, start - dt.timedelta(hours=1)) == 0.0


def test_continuous_operation_has_no_gaps_in_a_normal_week(three_shift: ShiftCalendar) -> None:
    when = berlin(2026, 11, 23, 0, 0)
    seen: list[ShiftWindow] = []
    while when < berlin(2026, 11, 30, 0, 0):
        window = shift_at(three_shift, when)
        assert window is not None, when
        if not seen or seen[-1] != window:
            assert not seen or seen[-1].end == window.start
            seen.append(window)
        when += dt.timedelta(minutes=20)
    assert [w.name for w in seen[:4]] == ["night", "early", "late", "night"]
    assert len(seen) == 22


def test_naive_datetimes_are_refused(three_shift: ShiftCalendar) -> None:
    with pytest.raises(ValueError, match="aware"):
        shift_at(three_shift, dt.datetime(2026, 11, 25, 10, 0))


def test_target_so_far_counts_real_time_across_the_spring_change(
    three_shift: ShiftCalendar,
) -> None:
    at_four = berlin(2026, 3, 29, 4, 0)  # CEST: 6 wall-clock hours after 22:00, 5 real ones
    window = shift_at(three_shift, at_four)
    assert window is not None
    assert window.productive_elapsed(at_four) == 5 * 3600 - 30 * 60  # minus the 01:00 break
    assert target_so_far(TAKT_60, window, at_four) == 270.0
    assert target_so_far(TAKT_60, window, window.end) == 375.0
    per_shift = Target(units_per_shift=420)
    assert target_so_far(per_shift, window, window.end) == 420.0
    assert target_so_far(per_shift, window, at_four) == pytest.approx(420 * 270 / 375)


def test_target_so_far_across_the_autumn_change_reaches_the_longer_target(
    three_shift: ShiftCalendar,
) -> None:
    at_five = berlin(2026, 10, 25, 5, 0)  # CET: 7 wall-clock hours after 22:00, 8 real ones
    window = shift_at(three_shift, at_five)
    assert window is not None and window.name == "night"
    assert window.breaks[1] == (utc(2026, 10, 25, 3, 0), utc(2026, 10, 25, 3, 15))
    assert target_so_far(TAKT_60, window, at_five) == 8 * 60 - 45
    assert target_so_far(TAKT_60, window, window.end) == 495.0
    assert target_so_far(TAKT_60, window, window.end + dt.timedelta(hours=1)) == 495.0


def test_a_break_across_midnight_is_one_pause() -> None:
    calendar = ShiftCalendar.model_validate(
        {
            "timezone": "Europe/Berlin",
            "shifts": [
                {
                    "name": "night",
                    "start": "22:00",
                    "end": "06:00",
                    "breaks": [{"start": "23:45", "end": "00:15"}],
                }
            ],
        }
    )
    window = shift_at(calendar, berlin(2026, 11, 26, 0, 0))
    assert window is not None
    assert window.breaks == ((berlin(2026, 11, 25, 23, 45), berlin(2026, 11, 26, 0, 15)),)
    assert window.productive_seconds() == 8 * 3600 - 30 * 60
    assert target_so_far(TAKT_60, window, berlin(2026, 11, 26, 0, 0)) == 105.0
    assert target_so_far(TAKT_60, window, berlin(2026, 11, 26, 0, 15)) == 105.0


def test_a_day_off_mid_week_leaves_a_gap_until_the_next_working_day() -> None:
    calendar = ShiftCalendar.model_validate(
        {
            "timezone": "Europe/Berlin",
            "shifts": [{"name": "early", "start": "06:00", "end": "14:00"}],
            "days_off": ["2026-11-25"],
        }
    )
    assert shift_at(calendar, berlin(2026, 11, 24, 10, 0)) is not None
    assert shift_at(calendar, berlin(2026, 11, 25, 10, 0)) is None
    thursday = shift_at(calendar, berlin(2026, 11, 26, 6, 0))
    assert thursday is not None and thursday.start == berlin(2026, 11, 26, 6, 0)
