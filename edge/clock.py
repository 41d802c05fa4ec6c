"""Timestamps as integer nanoseconds since the epoch (UTC), the unit of InfluxDB and the outbox."""

from __future__ import annotations

import datetime as dt
import time

from taktline.records import Reading

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_US_PER_DAY = 86_400_000_000
_EARLIEST_NS = 946_684_800_000_000_000
"""2000-01-01T00:00:00Z: a timestamp before it is not plausible."""
_MAX_AHEAD_NS = 86_400_000_000_000
"""One day: a timestamp further ahead of reception is not plausible."""


def to_ns(ts: dt.datetime) -> int:
    """Nanoseconds since the epoch (microsecond precision, as datetime holds); naive is UTC."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    since = ts - EPOCH
    return (since.days * _US_PER_DAY + since.seconds * 1_000_000 + since.microseconds) * 1000


def from_ns(ns: int) -> dt.datetime:
    """An aware UTC datetime (nanoseconds below a microsecond are cut)."""
    return EPOCH + _MICROSECOND * (ns // 1000)


def now_ns() -> int:
    """The wall clock now."""
    return time.time_ns()


def reading_times_ns(reading: Reading) -> tuple[int, int]:
    """The time an update of `reading` is stamped with, and its reception time.

    The stamp is the reading's chosen timestamp (`stamp`, the source timestamp by default) when
    it is plausible (from 2000 on, not more than a day after reception), else the other one,
    else reception time.
    """
    received = to_ns(reading.received_at)
    if reading.stamp == "source":
        first, second = reading.source_ts, reading.server_ts
    else:
        first, second = reading.server_ts, reading.source_ts
    latest = received + _MAX_AHEAD_NS
    if first is not None and _EARLIEST_NS <= (ns := to_ns(first)) <= latest:
        return ns, received
    if second is not None and _EARLIEST_NS <= (ns := to_ns(second)) <= latest:
        return ns, received
    return received, received


def reading_ts_ns(reading: Reading) -> int:
    """The time an update of `reading` is stamped with (see `reading_times_ns`)."""
    return reading_times_ns(reading)[0]
