"""Edge health on the server: live-bus samples become points in a real influxd; bad samples are
counted and logged once; a failed write drops its samples; the v2 API takes them too."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from server.app import Server
from server.edge_health import EdgeHealthBook
from server.edge_health_influx import EdgeHealthInflux, points
from taktline.config import InfluxV1, InfluxV2, ServerConfig
from taktline.livebus import (
    EdgeHealth,
    OutboxHealthBody,
    SinkHealthBody,
    SourceHealthBody,
    edge_health_topic,
)
from taktline.localbroker import free_port
from taktline.model import SecretRef
from tests.edge.helpers import tcp_relay
from tests.fixtures.services import InfluxService, run_victoria_metrics
from tests.server.conftest import PinnedClock, Publish, eventually

T0 = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)


def sample(
    edge_id: str = "edge-final",
    second: int = 0,
    *,
    depth: int = 0,
    readings: int = 100,
    connected: bool = True,
    errors: int = 0,
    write_s: float | None = 0.012,
) -> EdgeHealth:
    """A health sample of an edge with one source (`plc fa1`) and two sinks, at T0 + second."""
    return EdgeHealth(
        edge_id=edge_id,
        ts=T0 + dt.timedelta(seconds=second),
        sources=[
            SourceHealthBody(
                source="plc fa1",
                connected=connected,
                last_data_at=T0,
                reconnects=0 if connected else 1,
                readings=readings,
                rejected=2,
            )
        ],
        outbox=OutboxHealthBody(
            depth=depth, oldest_age_s=depth / 10, dropped=0, max_records=10_000, full=False
        ),
        sinks=[
            SinkHealthBody(
                sink="influxdb",
                connected=depth == 0,
                depth=depth,
                delivered=readings - depth,
                errors=errors,
                rejected=0,
                write_s=write_s,
            ),
            SinkHealthBody(
                sink="live_bus",
                connected=True,
                depth=0,
                delivered=readings,
                errors=0,
                rejected=0,
                write_s=None,
            ),
        ],
    )


def encoded(health: EdgeHealth) -> bytes:
    return health.model_dump_json().encode()


def with_influx(config: ServerConfig, url: str, database: str) -> ServerConfig:
    influx = InfluxV1(api="v1", url=url, database=database, timeout_s=2)
    return ServerConfig(config.settings.model_copy(update={"influxdb": influx}), config.plant)


async def until(check: Callable[[], object]) -> None:
    async def poll() -> bool:
        return bool(check())

    await eventually(poll)


def test_points_follow_the_contract() -> None:
    health = sample("edge 1,a=b", 30, depth=5, write_s=None)
    health = health.model_copy(update={"sinks": health.sinks[:1]})
    ns = int((T0 + dt.timedelta(seconds=30)).timestamp()) * 10**9
    assert points(health) == [
        r"edge_source,edge=edge\ 1\,a\=b,source=plc\ fa1"
        f" connected=1i,reconnects=0i,readings=100i,rejected=2i {ns}",
        r"edge_outbox,edge=edge\ 1\,a\=b"
        f" depth=5i,dropped=0i,full=0i,max_records=10000i,oldest_age_s=0.5 {ns}",
        r"edge_sink,edge=edge\ 1\,a\=b,sink=influxdb"
        f" connected=0i,delivered=95i,depth=5i,errors=0i,rejected=0i {ns}",
    ]


def test_the_book_keeps_the_newest_sample_and_counts_bad_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handed: list[EdgeHealth] = []
    book = EdgeHealthBook(handed.append)
    topic = edge_health_topic("edge-final")
    assert book.handle("taktline/v1/_edge/edge-final/status", b"{}") is False
    assert book.handle(topic, encoded(sample(second=20, depth=3))) is True
    assert book.handle(topic, encoded(sample(second=10, depth=9)))  # older: written, not kept
    assert book.latest["edge-final"].outbox.depth == 3
    assert [h.outbox.depth for h in handed] == [3, 9]
    with caplog.at_level(logging.WARNING, "server.edge_health"):
        assert book.handle(topic, b'{"edge_id": "edge-final"}')
        assert book.handle(topic, b"not json")
        assert book.handle(topic, encoded(sample("edge-other")))
    assert book.rejected == {"malformed": 2, "wrong_edge": 1}
    assert len(caplog.records) == 1  # once per topic while it fails
    assert "malformed" in caplog.records[0].getMessage()
    assert book.accepted == 2 and len(handed) == 2
    assert book.handle(topic, b"")  # the retained sample cleared: the edge is gone
    assert book.latest == {}


async def test_a_sample_on_the_live_bus_becomes_points_and_a_bad_one_is_counted(
    server_config: ServerConfig, clock: PinnedClock, publish: Publish, influxd: InfluxService
) -> None:
    database = "server_edge_health"
    influxd.drop_database(database)
    config = with_influx(server_config, influxd.url, database)
    topic = edge_health_topic("edge-final")
    async with Server(config, clock=clock) as server:
        await asyncio.wait_for(server.listener.connected.wait(), 10)
        await publish(topic, b'{"edge_id": "edge-final", "outbox": {"depth": -1}}')
        await publish(topic, encoded(sample(depth=7, errors=3, connected=False)))
        await until(lambda: server.edge_health_influx and server.edge_health_influx.written == 1)
        latest = server.edge_health.latest["edge-final"]
        async with httpx.AsyncClient(base_url=server.url) as http:
            metrics = (await http.get("/metrics")).text
    assert server.edge_health.rejected == {"malformed": 1}
    assert 'taktline_server_edge_health_rejected_total{reason="malformed"} 1.0' in metrics
    assert "taktline_server_edge_health_written_total 1.0" in metrics
    assert "taktline_server_edges_reporting 1.0" in metrics
    assert latest.outbox.depth == 7
    assert sum(server.board.rejected.values()) == 0  # health is not a counter message

    ns = int(T0.timestamp()) * 10**9
    [source] = influxd.query("SELECT * FROM edge_source", database)
    assert source | {"time": None} == {
        "time": None,
        "edge": "edge-final",
        "source": "plc fa1",
        "connected": 0,
        "reconnects": 1,
        "readings": 100,
        "rejected": 2,
    }
    [outbox] = influxd.query("SELECT * FROM edge_outbox", database)
    assert (outbox["time"], outbox["depth"], outbox["oldest_age_s"]) == (ns, 7, 0.7)
    sinks = influxd.query("SELECT * FROM edge_sink", database)
    by_sink = {row["sink"]: row for row in sinks}
    assert (by_sink["influxdb"]["errors"], by_sink["influxdb"]["write_s"]) == (3, 0.012)
    assert by_sink["live_bus"]["write_s"] is None and by_sink["live_bus"]["connected"] == 1
    types = influxd.query("SHOW FIELD KEYS FROM edge_sink", database)
    assert {row["fieldKey"]: row["fieldType"] for row in types}["connected"] == "integer"


async def test_a_failed_write_drops_its_samples_and_logs_once(
    influxd: InfluxService, caplog: pytest.LogCaptureFixture
) -> None:
    database = "edge_health_down"
    influxd.drop_database(database)
    port = free_port()
    writer = EdgeHealthInflux(
        InfluxV1(api="v1", url=f"http://127.0.0.1:{port}", database=database, timeout_s=2)
    )
    running = asyncio.create_task(writer.run())
    try:
        with caplog.at_level(logging.INFO, "server.edge_health_influx"):
            writer.offer(sample(second=0))
            await until(lambda: writer.dropped == 1)
            writer.offer(sample(second=10))
            await until(lambda: writer.dropped == 2)
            async with tcp_relay(port, influxd.port):
                writer.offer(sample(second=20, depth=4))
                await until(lambda: writer.written == 1)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert "dropped" in messages[0] and "again" in messages[1]
    rows = influxd.query("SELECT depth FROM edge_outbox", database)
    assert [row["depth"] for row in rows] == [4]  # the dropped samples are not retried


async def test_a_full_queue_drops_the_oldest_sample(influxd: InfluxService) -> None:
    database = "edge_health_queue"
    influxd.drop_database(database)
    settings = InfluxV1(api="v1", url=influxd.url, database=database, timeout_s=2)
    writer = EdgeHealthInflux(settings, queue_size=2)
    for second in (0, 10, 20):
        writer.offer(sample(second=second, depth=second))
    assert writer.dropped == 1
    running = asyncio.create_task(writer.run())
    try:
        await until(lambda: writer.written == 2)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    rows = influxd.query("SELECT depth FROM edge_outbox", database)
    assert [row["depth"] for row in rows] == [10, 20]


async def test_the_v2_api_takes_the_samples(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("t0ken", encoding="utf-8")
    with run_victoria_metrics(tmp_path) as victoria:
        settings = InfluxV2(
            api="v2", url=victoria.url, org="plant", bucket="b", token=SecretRef(file=secret)
        )
        writer = EdgeHealthInflux(settings)
        writer.offer(sample(depth=6))
        running = asyncio.create_task(writer.run())
        try:
            await until(lambda: writer.written == 1)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        [series] = await asyncio.to_thread(victoria.export, "edge_outbox_depth")
    assert series["metric"] == {"__name__": "edge_outbox_depth", "edge": "edge-final"}
    assert series["values"] == [6]
    assert series["timestamps"] == [int(T0.timestamp() * 1000)]
