"""Which timestamp stamps an update: the source's choice, with fallbacks."""

from __future__ import annotations

import datetime as dt

from edge.clock import from_ns, reading_ts_ns
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
