"""The edge's health on the live bus: a retained message on a real Mosquitto whose outbox depth
grows while InfluxDB is unreachable, and the message built from a snapshot."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt

from collectors.base import SourceHealth
from edge.agent import EdgeAgent
from edge.health import HealthReporter, HealthSnapshot, SinkStatus
from edge.sinks.base import SinkHealth
from taktline.livebus import EdgeHealth, edge_health_topic
from taktline.localbroker import free_port
from tests.edge.test_agent import FAST, TESTED, publish, write_config
from tests.edge.test_livebus import body, collect
from tests.fixtures.services import MosquittoService


def influxdb_errors(health: dict[str, Any]) -> int:
    errors: int = next(s["errors"] for s in health["sinks"] if s["sink"] == "influxdb")
    return errors


async def health_where(
    messages: Any, check: Callable[[dict[str, Any]], bool], seen: list[dict[str, Any]]
) -> dict[str, Any]:
    """Read health messages until one passes `check`; every one read goes to `seen`."""
    async for message in messages:
        health = body(message)
        seen.append(health)
        if check(health):
            return health
    raise AssertionError("the subscription ended")


async def test_health_is_retained_and_shows_the_outbox_growing_while_influxdb_is_down(
    tmp_path: Path, mosquitto: MosquittoService
) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens: the influxdb cursor holds
    config = write_config(tmp_path, mosquitto.port, down, "edge_health")
    topic = edge_health_topic("edge-t")
    seen: list[dict[str, Any]] = []
    async with (
        EdgeAgent(config, backoff=FAST, health_every_s=0.1) as agent,
        aiomqtt.Client(mosquitto.host, mosquitto.port) as client,
        asyncio.timeout(30),
    ):
        await client.subscribe(topic, qos=1)
        messages = aiter(client.messages)
        await publish(mosquitto, "plc/l1/tested", *[1] * 5)
        first = await health_where(messages, lambda h: h["outbox"]["depth"] == 5, seen)
        await publish(mosquitto, "plc/l1/tested", *[1] * 7)
        later = await health_where(
            messages, lambda h: h["outbox"]["depth"] == 12 and influxdb_errors(h) > 0, seen
        )
        assert agent.total(TESTED) == 12
    depths = [health["outbox"]["depth"] for health in seen]
    assert depths == sorted(depths) and depths[-1] == 12
    assert later["outbox"]["oldest_age_s"] > 0
    assert later["outbox"] | {"oldest_age_s": None} == {
        "depth": 12,
        "oldest_age_s": None,
        "dropped": 0,
        "max_records": 1000,
        "full": False,
    }
    sinks = {sink["sink"]: sink for sink in later["sinks"]}
    assert sinks["influxdb"]["connected"] is False and sinks["influxdb"]["errors"] >= 1
    assert (sinks["influxdb"]["depth"], sinks["influxdb"]["delivered"]) == (12, 0)
    assert sinks["influxdb"]["write_s"] is None  # no write went through
    assert (sinks["live_bus"]["connected"], sinks["live_bus"]["depth"]) == (True, 0)
    assert sinks["live_bus"]["delivered"] == 12
    (source,) = later["sources"]
    assert source["source"] == "eol-mqtt" and source["connected"] is True
    assert source["readings"] == 12 and first["sources"][0]["readings"] == 5
    assert source["last_data_at"].endswith("Z")
    assert EdgeHealth.model_validate(later).edge_id == "edge-t"

    (kept,) = await collect(mosquitto, topic, 1)  # a late subscriber gets the newest sample
    assert kept.retain
    assert body(kept)["outbox"]["depth"] == 12


def snapshot(writes: int, write_seconds: float, ages: list[float | None]) -> HealthSnapshot:
    sinks = [
        SinkStatus(
            SinkHealth(f"sink{i}", connected=True, writes=writes, write_seconds=write_seconds),
            depth=3 * i,
            oldest_pending_age_s=age,
        )
        for i, age in enumerate(ages)
    ]
    source = SourceHealth("plc", connected=False, reconnects=2, readings=40, rejected=1)
    return HealthSnapshot(
        edge_id="e1",
        sources=[source],
        sinks=sinks,
        outbox_undelivered=6,
        outbox_max_records=1000,
        outbox_full=False,
        outbox_dropped=4,
        decisions={},
        totals={},
        unmapped_readings=0,
    )


def test_write_latency_is_the_mean_since_the_previous_message() -> None:
    reporter = HealthReporter()
    ts = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
    first = reporter.message(snapshot(4, 2.0, [None, 1.5, 0.5]), ts)
    assert [sink.write_s for sink in first.sinks] == [0.5, 0.5, 0.5]
    assert (first.outbox.depth, first.outbox.oldest_age_s, first.outbox.dropped) == (6, 1.5, 4)
    (source,) = first.sources
    assert (source.connected, source.reconnects, source.readings, source.rejected) == (
        False,
        2,
        40,
        1,
    )
    second = reporter.message(snapshot(6, 2.5, [None, None, None]), ts)
    assert [sink.write_s for sink in second.sinks] == [0.25, 0.25, 0.25]
    assert second.outbox.oldest_age_s == 0.0
    third = reporter.message(snapshot(6, 2.5, [None]), ts)
    assert [sink.write_s for sink in third.sinks] == [None]  # no write since
    text = third.model_dump_json()
    assert '"ts":"2026-11-26T09:00:00.000Z"' in text
    assert EdgeHealth.model_validate_json(text) == third
