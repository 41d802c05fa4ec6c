"""Which timestamp stamps an update: the source's choice, with fallbacks."""

from __future__ import annotations

import datetime as dt

from edge.clock import from_ns, reading_times_ns, reading_ts_ns, to_ns
from taktline.records import Reading

RECEIVED = dt.datetime(2026, 11, 26, 10, 0, 5, tzinfo=dt.UTC)
SOURCE = RECEIVED - dt.timedelta(seconds=3)
SERVER = RECEIVED - dt.timedelta(seconds=1)


def reading(source: dt.datetime | None, server: dt.datetime | None, **kw: object) -> Reading:
    return Reading("plc", "ns=2;s=A", 1, source, server, RECEIVED, **kw)  # type: ignore[arg-type]


def test_source_timestamp_by_default_server_when_chosen() -> None:
    assert from_ns(reading_ts_ns(reading(SOURCE, SERVER))) == SOURCE
    assert from_ns(reading_ts_ns(reading(SOURCE, SERVER, stamp="server"))) == SERVER


def test_the_other_timestamp_then_reception_when_the_chosen_one_is_unusable() -> None:
    implausible = dt.datetime(1601, 1, 1, tzinfo=dt.UTC)  # an unset OPC UA DateTime
    assert from_ns(reading_ts_ns(reading(implausible, SERVER))) == SERVER
    assert from_ns(reading_ts_ns(reading(SOURCE, None, stamp="server"))) == SOURCE
    assert from_ns(reading_ts_ns(reading(None, None))) == RECEIVED


def test_reading_times_give_the_stamp_and_the_reception_time() -> None:
    received = to_ns(RECEIVED)
    assert reading_times_ns(reading(SOURCE, SERVER)) == (to_ns(SOURCE), received)
    day_ahead = RECEIVED + dt.timedelta(days=1)
    assert reading_times_ns(reading(day_ahead, SERVER))[0] == to_ns(day_ahead)
    too_far = day_ahead + dt.timedelta(microseconds=1)
    assert reading_times_ns(reading(too_far, SERVER))[0] == to_ns(SERVER)
    earliest = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    assert reading_times_ns(reading(earliest, SERVER))[0] == to_ns(earliest)
    too_early = earliest - dt.timedelta(microseconds=1)
    assert reading_times_ns(reading(too_early, SERVER))[0] == to_ns(SERVER)


def test_naive_timestamps_are_utc_and_nanoseconds_round_trip() -> None:
    naive = SOURCE.replace(tzinfo=None)
    assert to_ns(naive) == to_ns(SOURCE)
    berlin = SOURCE.astimezone(dt.timezone(dt.timedelta(hours=1)))
    assert to_ns(berlin) == to_ns(SOURCE)
    assert to_ns(SOURCE) % 1000 == 0
    assert from_ns(to_ns(SOURCE) + 999) == SOURCE
    before_epoch = dt.datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC)
    assert from_ns(to_ns(before_epoch)) == before_epoch
