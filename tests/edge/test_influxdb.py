"""The InfluxDB v1 sink against a real influxd."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision

from edge.clock import to_ns
from edge.outbox import Outbox
from edge.sinks.errors import BatchRejectedError, SinkUnavailableError
from edge.sinks.forwarder import Backoff, forward
from edge.sinks.influx_answers import MAX_RETRY_AFTER_S, parse_retry_after
from edge.sinks.influxdb import InfluxV1Sink
from edge.sinks.line_protocol import MEASUREMENT, NS_PER, LineProtocol, Precision
from taktline.config.settings import InfluxV1
from taktline.localbroker import free_port
from taktline.model.paths import CounterPath
from taktline.records import CounterUpdate
from tests.edge.helpers import PASSED, T0, until, update
from tests.edge.http_answers import answering
from tests.fixtures.services import InfluxService


def settings(url: str, database: str, **more: Any) -> InfluxV1:
    return InfluxV1.model_validate(
        {"api": "v1", "url": url, "database": database, "timeout_s": 2} | more
    )


def test_line_protocol_has_the_contract_tags_and_integer_fields() -> None:
    line = LineProtocol().line(update(16_250_317))
    assert line.startswith(
        "production,area=final,counter=passed,line=fa1,site=neustadt,station=eol "
    )
    fields, ts = line.split(" ")[1:]
    assert sorted(fields.split(",")) == [
        "delta=1i",
        f"raw={16_250_317 % 65536}i",
        "total=16250317i",
    ]
    assert ts == str(to_ns(T0) + 16_250_317 * 1_000_000_000)


@pytest.mark.parametrize(("compress", "precision"), [(True, "ns"), (False, "ns"), (True, "s")])
async def test_points_land_once_even_when_written_twice(
    influxd: InfluxService, compress: bool, precision: str
) -> None:
    database = f"edge_points_{int(compress)}_{precision}"
    influxd.drop_database(database)
    written = settings(influxd.url, database, gzip=compress, precision=precision)
    async with InfluxV1Sink(written) as sink:
        await sink.ready()  # creates the database
        batch = [update(100), update(101, delta=1)]
        await sink.send(batch)
        await sink.send(batch)  # a retry after a crash
    rows = influxd.query("SELECT total, delta, raw FROM production GROUP BY *", database=database)
    assert [(r["total"], r["delta"], r["raw"]) for r in rows] == [(100, 1, 100), (101, 1, 101)]
    assert {k: rows[0][k] for k in ("site", "area", "line", "station", "counter")} == PASSED.tags()
    step = NS_PER[written.precision]
    assert rows[0]["time"] == (to_ns(T0) + 100 * 1_000_000_000) // step * step


async def test_a_short_batch_waits_for_the_flush_interval_a_full_one_does_not(
    tmp_path: Path,
) -> None:
    async with (
        answering([]) as server,
        InfluxV1Sink(settings(server.url, "x", batch_size=5, flush_interval_ms=600)) as sink,
        Outbox(tmp_path / "o.db", [sink.name], max_records=10_000) as outbox,
    ):
        sink._database_ready = True
        forwarding = asyncio.create_task(forward(sink, outbox, Backoff(0.01, 0.05)))
        try:
            loop = asyncio.get_running_loop()
            stored = loop.time()
            await outbox.append([update(1), update(2)], {})
            await until(lambda: len(server.requests) == 1)
            waited = server.requests[0].at - stored
            await outbox.append([update(total) for total in range(3, 8)], {})  # a full batch
            full_at = loop.time()
            await until(lambda: len(server.requests) == 2)
            assert server.requests[1].at - full_at < waited
        finally:
            forwarding.cancel()
            await asyncio.gather(forwarding, return_exceptions=True)
    assert waited >= 0.55
    assert server.requests[0].body != server.requests[1].body
    assert len(gzip.decompress(server.requests[1].body).splitlines()) == 5


async def test_a_refused_batch_is_rejected_with_influxdb_message(influxd: InfluxService) -> None:
    influxd.drop_database("edge_conflict")
    influxd.create_database("edge_conflict")
    # someone wrote `total` as a float before: every integer `total` now conflicts
    tags = ",".join(f"{key}={value}" for key, value in PASSED.tags().items())
    async with httpx.AsyncClient() as client:
        written = await client.post(
            f"{influxd.url}/write",
            params={"db": "edge_conflict"},
            content=f"production,{tags} total=1.5".encode(),
        )
        assert written.status_code == 204
    async with InfluxV1Sink(settings(influxd.url, "edge_conflict")) as sink:
        await sink.ready()
        with pytest.raises(BatchRejectedError, match="field type conflict"):
            await sink.send([update(5)])


async def test_unreachable_influxdb_is_unavailable_not_rejected() -> None:
    async with InfluxV1Sink(settings(f"http://127.0.0.1:{free_port()}", "x")) as sink:
        with pytest.raises(SinkUnavailableError):
            await sink.ready()
        assert sink.health.connected is False


_POINT: Any = Point  # influxdb-client is not annotated
_NAMES = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))
    | st.sampled_from(" ,=\\"),
    min_size=1,
    max_size=12,
).filter(lambda text: not text.endswith("\\"))


@given(
    st.tuples(_NAMES, _NAMES, _NAMES, _NAMES, _NAMES),
    st.integers(0, 2**63 - 1),
    st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    st.sampled_from(["ns", "us", "ms", "s"]),
)
def test_lines_equal_influxdb_clients_point(
    names: tuple[str, str, str, str, str], total: int, raw: int | None, precision: Precision
) -> None:
    """Our direct formatting against influxdb-client's Point, escapes and precision included."""
    item = CounterUpdate(CounterPath(*names), T0, raw, total, 3)
    point: Any = _POINT(MEASUREMENT)
    for key, value in item.counter.tags().items():
        point = point.tag(key, value)
    point = point.field("total", item.total).field("delta", item.delta)
    if raw is not None:
        point = point.field("raw", raw)
    expected = point.time(to_ns(T0), WritePrecision.NS).to_line_protocol()
    fields_and_tags, ns = expected.rsplit(" ", 1)
    expected = f"{fields_and_tags} {int(ns) // NS_PER[precision]}"
    assert LineProtocol(precision).line(item) == expected


async def test_retry_after_is_honoured_then_the_batch_is_delivered(tmp_path: Path) -> None:
    """A 429 with Retry-After: 1 (InfluxDB Cloud's rate limit): the retry waits for it."""
    too_many = (429, {"Retry-After": "1"}, b'{"error":"too many requests"}')
    async with (
        answering([too_many]) as server,
        InfluxV1Sink(settings(server.url, "x")) as sink,
        Outbox(tmp_path / "o.db", [sink.name], max_records=10_000) as outbox,
    ):
        sink._database_ready = True
        await outbox.append([update(1)], {})
        forwarding = asyncio.create_task(forward(sink, outbox, Backoff(0.01, 0.05)))
        try:
            await until(lambda: outbox.depth(sink.name) == 0)
        finally:
            forwarding.cancel()
            await asyncio.gather(forwarding, return_exceptions=True)
    first, second = server.requests
    assert second.at - first.at >= 0.95  # not the 10-50 ms of the backoff
    assert first.body == second.body
    assert sink.health.errors == 1


def test_retry_after_as_seconds_or_a_date_and_capped() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("100000") == MAX_RETRY_AFTER_S
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a past date: now
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_a_rejected_point_is_isolated_and_parked_the_rest_arrives(
    influxd: InfluxService, tmp_path: Path
) -> None:
    """A database that keeps one hour: a point from two days ago is refused, the others not."""
    database = "edge_dead_letters"
    influxd.drop_database(database)
    async with httpx.AsyncClient() as client:
        created = await client.post(
            f"{influxd.url}/query", params={"q": f'CREATE DATABASE "{database}" WITH DURATION 1h'}
        )
        assert created.status_code == 200
    now = dt.datetime.now(dt.UTC)
    batch = [
        CounterUpdate(PASSED, now + dt.timedelta(milliseconds=total), total, total, 1)
        for total in range(1, 21)
    ]
    batch[12] = batch[12]._replace(ts=now - dt.timedelta(days=2))
    sink_settings = settings(influxd.url, database, flush_interval_ms=0, gzip=False)
    async with (
        InfluxV1Sink(sink_settings) as sink,
        Outbox(tmp_path / "o.db", [sink.name], max_records=10_000) as outbox,
    ):
        await outbox.append(batch, {})
        forwarding = asyncio.create_task(forward(sink, outbox, Backoff(0.01, 0.05)))
        try:
            await until(lambda: outbox.depth(sink.name) == 0)
        finally:
            forwarding.cancel()
            await asyncio.gather(forwarding, return_exceptions=True)
        (letter,) = await outbox.dead_letters(sink.name)
        assert (sink.health.delivered, sink.health.rejected) == (19, 1)
    assert letter.update == batch[12] and "retention policy" in letter.reason
    rows = influxd.query("SELECT total FROM production", database)
    assert [row["total"] for row in rows] == [t for t in range(1, 21) if t != 13]
