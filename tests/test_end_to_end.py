"""The whole slice: simulator -> edge -> real influxd and live bus -> server.

Every unit the simulator produced must appear exactly once: in InfluxDB (checked with InfluxQL),
in the edge's totals, and in the server's API and event stream.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from edge.agent import EdgeAgent
from server.app import Server
from taktline.config import InfluxV1
from taktline.demo.runner import first_totals, local_configs, until_quiet
from taktline.localbroker import free_port
from tests.edge.helpers import tcp_relay
from tests.fixtures.services import InfluxService, MosquittoService
from tests.fixtures.sim import load_example_plant, running_simulator

pytestmark = pytest.mark.integration

DATABASE = "end_to_end"
PRODUCTION_S = 12.0


def _influx_totals(influxd: InfluxService) -> dict[str, tuple[int, int, int]]:
    """Per counter: (first total, last total, sum of deltas) from InfluxDB."""
    rows = influxd.query(
        "SELECT first(total), last(total), sum(delta) FROM production GROUP BY *",
        database=DATABASE,
    )
    return {
        "/".join(row[tag] for tag in ("site", "area", "line", "station", "counter")): (
            row["first"],
            row["last"],
            row["sum"],
        )
        for row in rows
    }


async def _next_sse_state(client: httpx.AsyncClient, line: str) -> dict[str, object]:
    async with client.stream("GET", f"/api/lines/{line}/events") as response:
        async for text in response.aiter_lines():
            if text.startswith("data:"):
                body = json.loads(text.removeprefix("data:").strip())
                if isinstance(body, dict) and body.get("line") == line:
                    return body
    raise AssertionError("the event stream ended without a state")


async def test_every_unit_lands_once_in_influxdb_and_on_the_server(
    tmp_path: Path, mosquitto: MosquittoService, influxd: InfluxService
) -> None:
    influxd.drop_database(DATABASE)
    async with running_simulator(
        load_example_plant(),
        mosquitto.port,
        rate_per_min=180,
        seed=11,
        reset_every_s=5,
        paused=True,
    ) as (plant, sim):
        edge_config, server_config = local_configs(
            plant,
            tmp_path / "plant.yaml",  # the configs carry the plant; the path is informative
            tmp_path,
            mqtt_port=mosquitto.port,
            http_port=0,
            influxdb=InfluxV1(api="v1", url=influxd.url, database=DATABASE),
        )
        paths = list(sim.ground_truth())
        async with EdgeAgent(edge_config) as edge, Server(server_config) as server:
            first = await first_totals(edge, paths)
            sim.resume()
            await asyncio.sleep(PRODUCTION_S)
            sim.pause()
            await sim.settle()
            await until_quiet(edge, paths)  # the last notifications travel to the edge
            await edge.wait_synced(timeout=30)

            truth = sim.ground_truth()
            assert sum(truth.values()) > 50, "the simulator produced too little to prove anything"
            assert sim.stats.resets > 0, "no PLC reset happened: the run proves less than it says"
            counted = {path: (edge.total(path) or 0) - first[path] for path in paths}
            assert counted == truth

            stored = _influx_totals(influxd)
            for path in paths:
                first_total, last_total, delta_sum = stored[str(path)]
                assert first_total == first[path], path
                assert last_total - first_total == truth[path], path
                assert delta_sum == truth[path], path

            async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
                async with asyncio.timeout(10):
                    while True:
                        lines = {
                            item["line"]: item for item in (await client.get("/api/lines")).json()
                        }
                        if all(
                            lines[p.line]["total"] == (edge.total(p) or 0)
                            for p in (placed.output_path() for placed in plant.lines())
                        ):
                            break
                        await asyncio.sleep(0.2)
                for placed in plant.lines():
                    output = placed.output_path()
                    assert lines[placed.line.id]["total"] == stored[str(output)][1]
                    if lines[placed.line.id]["shift"] is not None:
                        assert lines[placed.line.id]["shift_count"] >= truth[output]
                state = await asyncio.wait_for(_next_sse_state(client, "fa1"), 10)
                assert state["total"] == lines["fa1"]["total"]


async def test_an_influxdb_outage_during_counting_loses_and_repeats_nothing(
    tmp_path: Path, mosquitto: MosquittoService, influxd: InfluxService
) -> None:
    """InfluxDB unreachable for a third of the run while the plant keeps counting (PLC resets
    included); once it is back, every unit is in InfluxDB exactly once: a point repeated at
    another time would show in the sum of deltas, one missing in the last total."""
    influxd.drop_database(DATABASE)
    relay = free_port()
    async with running_simulator(
        load_example_plant(),
        mosquitto.port,
        rate_per_min=180,
        seed=12,
        reset_every_s=4,
        paused=True,
    ) as (plant, sim):
        edge_config, _ = local_configs(
            plant,
            tmp_path / "plant.yaml",
            tmp_path,
            mqtt_port=mosquitto.port,
            http_port=0,
            influxdb=InfluxV1(
                api="v1",
                url=f"http://127.0.0.1:{relay}",
                database=DATABASE,
                flush_interval_ms=200,
                timeout_s=2,
            ),
        )
        paths = list(sim.ground_truth())
        async with EdgeAgent(edge_config) as edge:
            async with tcp_relay(relay, influxd.port):
                first = await first_totals(edge, paths)
                sim.resume()
                await asyncio.sleep(PRODUCTION_S / 3)
            await asyncio.sleep(PRODUCTION_S / 3)  # InfluxDB is down: the outbox holds
            sink = next(s for s in edge.health().sinks if s.health.name == "influxdb")
            assert sink.health.errors > 0 and sink.depth > 0, "the outage was not felt"
            async with tcp_relay(relay, influxd.port):
                await asyncio.sleep(PRODUCTION_S / 3)
                sim.pause()
                await sim.settle()
                await until_quiet(edge, paths)
                await edge.wait_synced(timeout=30)
    truth = sim.ground_truth()
    assert sim.stats.resets > 0
    stored = _influx_totals(influxd)
    for path in paths:
        first_total, last_total, delta_sum = stored[str(path)]
        assert (first_total, last_total - first_total, delta_sum) == (
            first[path],
            truth[path],
            truth[path],
        ), path
