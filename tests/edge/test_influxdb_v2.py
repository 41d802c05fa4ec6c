"""The InfluxDB v2 sink against a real server that speaks `/api/v2/write`: VictoriaMetrics."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.agent import EdgeAgent
from edge.clock import to_ns
from edge.sinks.errors import SinkUnavailableError
from edge.sinks.forwarder import Backoff
from edge.sinks.influxdb_v2 import InfluxV2Sink
from taktline.config.loader import load_edge_config
from taktline.config.settings import InfluxV2
from taktline.localbroker import free_port
from tests.edge.helpers import PASSED, until, update
from tests.edge.http_answers import answering
from tests.edge.test_agent import TESTED, publish, write_config
from tests.fixtures.services import MosquittoService, VictoriaMetricsService, run_victoria_metrics


@pytest.fixture(scope="module")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetricsService]:
    with run_victoria_metrics(tmp_path_factory.mktemp("victoria")) as service:
        yield service


async def exported_series(
    victoria: VictoriaMetricsService, metric: str, line: str, values: int
) -> dict[str, Any]:
    """The one series of `metric` on `line` once it holds `values` samples: VictoriaMetrics
    makes a new series searchable shortly after it accepted the write."""
    async with asyncio.timeout(15):
        while True:
            found = [
                s
                for s in await asyncio.to_thread(victoria.export, metric)
                if s["metric"].get("line") == line
            ]
            if found and len(found[0]["values"]) >= values:
                (series,) = found
                return series
            await asyncio.sleep(0.2)


def settings(url: str) -> InfluxV2:
    return InfluxV2.model_validate(
        {
            "api": "v2",
            "url": url,
            "org": "plant",
            "bucket": "taktline",
            "token": {"env": "TAKTLINE_TEST_INFLUX_TOKEN"},
            "timeout_s": 2,
        }
    )


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAKTLINE_TEST_INFLUX_TOKEN", "t0ken")


async def test_points_are_written_and_read_back_with_their_tags_and_times(
    victoria: VictoriaMetricsService,
) -> None:
    batch = [update(total) for total in range(500, 1500)]
    async with InfluxV2Sink(settings(victoria.url)) as sink:
        await sink.ready()
        await sink.send(batch[:600])
        await sink.send(batch[600:])
        assert sink.health.connected
    series = await exported_series(victoria, "production_total", PASSED.line, len(batch))
    assert series["metric"] | {"db": None} == {
        "__name__": "production_total",
        "site": PASSED.site,
        "area": PASSED.area,
        "line": PASSED.line,
        "station": PASSED.station,
        "counter": PASSED.counter,
        "db": None,
    }
    assert series["values"] == [u.total for u in batch]
    assert series["timestamps"] == [to_ns(u.ts) // 1_000_000 for u in batch]
    deltas = await exported_series(victoria, "production_delta", PASSED.line, len(batch))
    assert sum(deltas["values"]) == len(batch)


async def test_an_unreachable_server_holds_the_batch() -> None:
    async with InfluxV2Sink(settings(f"http://127.0.0.1:{free_port()}")) as sink:
        with pytest.raises(SinkUnavailableError, match=r"127\.0\.0\.1"):
            await sink.send([update(1)])
        assert not sink.health.connected


async def test_the_token_is_sent_and_never_in_an_error() -> None:
    """A server that answers 401 with its own message: held (credentials), token not shown."""
    async with answering([(401, {}, b'{"code":"unauthorized","message":"bad token"}')]) as server:
        async with InfluxV2Sink(settings(server.url)) as sink:
            with pytest.raises(SinkUnavailableError, match="401") as raised:
                await sink.send([update(1)])
        assert "t0ken" not in str(raised.value)
        assert server.requests[0].headers["authorization"] == "Token t0ken"
        assert server.requests[0].path.startswith("/api/v2/write?")


async def test_an_edge_configured_with_api_v2_writes_its_totals(
    victoria: VictoriaMetricsService, mosquitto: MosquittoService, tmp_path: Path
) -> None:
    config = write_config(tmp_path, mosquitto.port, None, "")
    edge_file = tmp_path / "edge.yaml"
    edge_file.write_text(
        edge_file.read_text()
        + f"influxdb: {{api: v2, url: '{victoria.url}', org: plant, bucket: taktline,"
        " token: {env: TAKTLINE_TEST_INFLUX_TOKEN}, flush_interval_ms: 0}\n"
    )
    config = load_edge_config(edge_file)
    async with EdgeAgent(config, backoff=Backoff(0.05, 0.3)) as agent:
        await until(lambda: agent.health().ok)
        await publish(mosquitto, "plc/l1/tested", 1, 1, 1)
        await until(lambda: agent.total(TESTED) == 3)
        await agent.wait_synced(10)
    series = await exported_series(victoria, "production_total", line="l1", values=3)
    assert series["metric"]["counter"] == "tested"
    assert sorted(series["values"]) == [1, 2, 3]  # VictoriaMetrics keeps ms: ties may swap
