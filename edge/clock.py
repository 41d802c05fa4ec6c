"""Timestamps as integer nanoseconds since the epoch (UTC), the unit of InfluxDB and the outbox."""

from __future__ import annotations

import datetime as dt
import time

from taktline.records import Reading

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_MAX_AHEAD = dt.timedelta(days=1)


def to_ns(ts: dt.datetime) -> int:
    """Nanoseconds since the epoch (microsecond precision, as datetime holds)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    return (ts - EPOCH) // _MICROSECOND * 1000


def from_ns(ns: int) -> dt.datetime:
    """An aware UTC datetime (nanoseconds below a microsecond are cut)."""
    return EPOCH + dt.timedelta(microseconds=ns // 1000)


def now_ns() -> int:
    """The wall clock now."""
    return time.time_ns()


def reading_ts_ns(reading: Reading) -> int:
    """The time an update is stamped with: the reading's chosen timestamp (`stamp`, the source
    timestamp by default) when it is plausible (after 2000, not more than a day ahead of
    reception), else the other one, else reception time."""
    chosen = (reading.source_ts, reading.server_ts)
    for ts in chosen if reading.stamp == "source" else reversed(chosen):
        if ts is not None and _plausible(ts, reading.received_at):
            return to_ns(ts)
    return to_ns(reading.received_at)


def _plausible(ts: dt.datetime, received_at: dt.datetime) -> bool:
    aware = ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)
    received = received_at if received_at.tzinfo else received_at.replace(tzinfo=dt.UTC)
    return _EARLIEST <= aware <= received + _MAX_AHEAD
