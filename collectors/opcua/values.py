"""OPC UA data values to Readings: quality from the StatusCode, the count, UTC timestamps."""

from __future__ import annotations

import datetime as dt
import math

from asyncua import ua

from taktline.records import Quality, Reading

_NO_TIME = dt.datetime(1601, 1, 1, tzinfo=dt.UTC)
"""OPC UA DateTime 0: 'no timestamp'."""


def quality_of(status: ua.StatusCode | None) -> Quality:
    """Good -> GOOD, Uncertain -> UNCERTAIN, Bad (and the reserved severity) -> BAD."""
    if status is None or status.is_good():
        return Quality.GOOD
    if status.is_uncertain():
        return Quality.UNCERTAIN
    return Quality.BAD


def count_of(raw: object) -> int | None:
    """An integer count from a variant value: any integer type, or a float with no fraction.

    Booleans, strings, arrays, NaN and fractional floats are not counts.
    """
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
        return int(raw)
    return None


def utc(ts: dt.datetime | None) -> dt.datetime | None:
    """A timezone-aware UTC timestamp; None for a missing or zero OPC UA DateTime."""
    if ts is None:
        return None
    ts = ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)
    return None if ts <= _NO_TIME else ts


def to_reading(
    source_id: str, address: str, value: ua.DataValue, received_at: dt.datetime
) -> tuple[Reading, bool]:
    """The Reading for one data change, and whether a Good value was rejected as no count.

    A Good value that is no count travels as quality BAD with value None.
    """
    raw = value.Value.Value if value.Value is not None else None
    count = count_of(raw)
    quality = quality_of(value.StatusCode)
    rejected = quality is Quality.GOOD and count is None
    reading = Reading(
        source_id=source_id,
        address=address,
        value=count,
        source_ts=utc(value.SourceTimestamp),
        server_ts=utc(value.ServerTimestamp),
        received_at=received_at,
        quality=Quality.BAD if rejected else quality,
    )
    return reading, rejected


def missing_reading(source_id: str, address: str, received_at: dt.datetime) -> Reading:
    """What a node that cannot be monitored (unknown, access denied) reports: BAD, no value."""
    return Reading(
        source_id=source_id,
        address=address,
        value=None,
        source_ts=None,
        server_ts=None,
        received_at=received_at,
        quality=Quality.BAD,
    )
