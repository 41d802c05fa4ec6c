"""DataValue -> Reading: quality mapping, what counts as a count, timestamps in UTC."""

from __future__ import annotations

import datetime as dt

import pytest
from asyncua import ua

from collectors.opcua.values import count_of, quality_of, to_reading, utc
from taktline.records import Quality

NOW = dt.datetime(2026, 11, 26, 9, 41, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("status", "quality"),
    [
        (ua.StatusCodes.Good, Quality.GOOD),
        (ua.StatusCodes.GoodClamped, Quality.GOOD),
        (ua.StatusCodes.UncertainLastUsableValue, Quality.UNCERTAIN),
        (ua.StatusCodes.BadNodeIdUnknown, Quality.BAD),
        (ua.StatusCodes.BadSessionIdInvalid, Quality.BAD),
        (0xC0000000, Quality.BAD),  # reserved severity: treat as Bad
    ],
)
def test_quality_follows_the_status_severity(status: int, quality: Quality) -> None:
    assert quality_of(ua.StatusCode(status)) is quality


@pytest.mark.parametrize(
    ("raw", "count"),
    [
        (0, 0),
        (65_535, 65_535),
        (-3, -3),
        (2**40, 2**40),
        (12.0, 12),
        (12.5, None),
        (float("nan"), None),
        (True, None),
        ("12", None),
        (None, None),
        ([1, 2], None),
    ],
)
def test_only_integers_are_counts(raw: object, count: int | None) -> None:
    assert count_of(raw) == count


def test_timestamps_become_aware_utc_and_zero_time_is_none() -> None:
    assert utc(dt.datetime(2026, 1, 1, 12)) == dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    berlin = dt.timezone(dt.timedelta(hours=1))
    assert utc(dt.datetime(2026, 1, 1, 13, tzinfo=berlin)) == dt.datetime(
        2026, 1, 1, 12, tzinfo=dt.UTC
    )
    assert utc(dt.datetime(1601, 1, 1)) is None
    assert utc(None) is None


def test_a_good_value_that_is_no_count_is_reported_bad_and_flagged() -> None:
    value = ua.DataValue(ua.Variant("twelve", ua.VariantType.String), SourceTimestamp=NOW)
    reading, rejected = to_reading("eol", "ns=2;s=X", value, NOW)
    assert rejected
    assert (reading.quality, reading.value, reading.source_ts) == (Quality.BAD, None, NOW)


def test_a_bad_value_is_not_flagged_as_rejected() -> None:
    value = ua.DataValue(ua.Variant(), StatusCode=ua.StatusCode(ua.StatusCodes.BadSensorFailure))
    reading, rejected = to_reading("eol", "ns=2;s=X", value, NOW)
    assert not rejected
    assert (reading.quality, reading.value, reading.source_ts) == (Quality.BAD, None, None)
