"""The whole edge against real services: Mosquitto (source and live bus), influxd, HTTP.

Readings come from the real MQTT collector (collectors.registry) reading a real broker.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from edge.agent import EdgeAgent, run_edge
from edge.book import CounterBook
from edge.clock import to_ns
from edge.counters import NS_PER_S, TotalRules
from edge.intake import Intake
from edge.mapping import MappedCounter
from edge.sinks.forwarder import Backoff
from taktline.config.loader import EdgeConfig, load_edge_config
from taktline.livebus import counter_topic, edge_status_topic
from taktline.localbroker import free_port
from taktline.model.assets import Counter
from taktline.model.paths import CounterPath
from taktline.records import Quality, Reading
from tests.edge.helpers import tcp_relay, until
from tests.edge.test_livebus import body, collect
from tests.fixtures.services import InfluxService, MosquittoService

PASSED = CounterPath("s1", "a1", "l1", "eol", "passed")
TESTED = CounterPath("s1", "a1", "l1", "eol", "tested")
FAST = Backoff(initial_s=0.05, max_s=0.3)

PLANT = """
name: Test plant
sites:
  - id: s1
    name: Site
    areas:
      - id: a1
        name: Area
        lines:
          - id: l1
            name: Line 1
            output: eol/passed
            target: {takt_seconds: 60}
            stations:
              - id: eol
                name: EOL
                counters:
                  - {name: passed, bits: 16, initial_total: 1000000}
                  - {name: tested, semantics: increment}
shift_calendars:
  default:
    timezone: Europe/Berlin
    shifts: [{name: day, start: "06:00", end: "14:00"}]
sources:
  - type: mqtt
    id: eol-mqtt
    broker: {host: 127.0.0.1, port: BROKER_PORT}
    topics:
      - {topic: plc/l1/passed, counter: s1/a1/l1/eol/passed}
      - {topic: plc/l1/tested, counter: s1/a1/l1/eol/tested}
"""


def write_config(
    folder: Path, broker_port: int, influx_url: str | None, database: str, max_records: int = 1000
) -> EdgeConfig:
    (folder / "plant.yaml").write_text(PLANT.replace("BROKER_PORT", str(broker_port)))
    influx = (
        f"influxdb: {{api: v1, url: '{influx_url}', database: {database}, timeout_s: 2}}\n"
        if influx_url
        else ""
    )
    (folder / "edge.yaml").write_text(
        "plant: plant.yaml\nedge_id: edge-t\nstate_dir: state\n"
        f"live_bus: {{host: 127.0.0.1, port: {broker_port}}}\n"
        f"outbox: {{max_records: {max_records}, commit_interval_ms: 20}}\n"
        f"http: {{host: 127.0.0.1, port: 0}}\n{influx}"
    )
    return load_edge_config(folder / "edge.yaml")


async def publish(broker: MosquittoService, topic: str, *values: int) -> None:
    async with aiomqtt.Client(broker.host, broker.port) as client:
        for value in values:
            await client.publish(topic, str(value), qos=1)


async def get_json(url: str) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    return response.status_code, response.json()


async def test_readings_become_trusted_totals_in_influxdb_and_on_the_live_bus(
    tmp_path: Path, influxd: InfluxService, mosquitto: MosquittoService
) -> None:
    influxd.drop_database("edge_agent")
    config = write_config(tmp_path, mosquitto.port, influxd.url, "edge_agent")
    async with EdgeAgent(config, backoff=FAST) as agent:
        await until(lambda: agent.health().ok)
        # first, +1, a bad 0 read, +2, a reset to 5 confirmed by 6 (counted from zero)
        await publish(mosquitto, "plc/l1/passed", 100, 101, 0, 103, 5, 6)
        await publish(mosquitto, "plc/l1/tested", 1, 2)
        await until(lambda: agent.total(PASSED) == 1_000_009 and agent.total(TESTED) == 3)
        await agent.wait_synced(10)
        assert agent.http is not None
        status, health = await get_json(f"{agent.http.url}/healthz")
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"{agent.http.url}/metrics")).text

    assert status == 200 and health["status"] == "ok"
    assert health["sources"]["eol-mqtt"]["connected"] is True
    decisions = health["counters"][str(PASSED)]["decisions"]
    assert decisions == {"first": 1, "increase": 1, "drop": 2, "glitch": 1, "reset": 1}
    assert health["outbox"]["sinks"]["influxdb"]["depth"] == 0
    line = 'taktline_edge_counter_decisions_total{counter="s1/a1/l1/eol/passed",decision="reset"}'
    assert f"{line} 1.0" in metrics
    assert 'taktline_edge_outbox_depth{sink="live_bus"} 0.0' in metrics
    assert 'taktline_edge_source_readings_total{source="eol-mqtt"} 8.0' in metrics
    assert health["sources"]["eol-mqtt"]["readings"] == 8
    write_count = re.search(
        r'taktline_edge_sink_write_seconds_count\{sink="influxdb"\} (\S+)', metrics
    )
    assert write_count is not None and float(write_count.group(1)) >= 1
    assert 'taktline_edge_sink_write_seconds_sum{sink="influxdb"}' in metrics

    rows = influxd.query(
        "SELECT total, delta, raw FROM production WHERE counter = 'passed'", database="edge_agent"
    )
    assert [(r["total"], r["delta"], r["raw"]) for r in rows] == [
        (1_000_000, 0, 100),
        (1_000_001, 1, 101),
        (1_000_003, 2, 103),
        (1_000_009, 6, 6),
    ]
    (retained,) = await collect(mosquitto, counter_topic(PASSED), 1)
    # the live bus coalesces a batch per counter: the retained delta sums the last batch's deltas
    deltas = [r["delta"] for r in rows]
    suffix_sums = {sum(deltas[start:]) for start in range(len(deltas))}
    retained_body = body(retained)
    assert retained_body["delta"] in suffix_sums
    assert retained_body | {"ts": None, "delta": None} == {
        "total": 1_000_009,
        "delta": None,
        "raw": 6,
        "quality": "good",
        "ts": None,
    }

    # a restart neither loses nor recounts: the state came back from the outbox
    async with EdgeAgent(config, backoff=FAST) as agent:
        assert agent.total(PASSED) == 1_000_009
        await until(lambda: agent.health().ok)
        await publish(mosquitto, "plc/l1/passed", 7)
        await until(lambda: agent.total(PASSED) == 1_000_010)
        await agent.wait_synced(10)
    totals = influxd.query("SELECT last(total) FROM production GROUP BY counter", "edge_agent")
    assert {row["counter"]: row["last"] for row in totals} == {"passed": 1_000_010, "tested": 3}


async def test_full_outbox_stops_taking_readings_and_drops_nothing(
    tmp_path: Path, influxd: InfluxService, mosquitto: MosquittoService
) -> None:
    influxd.drop_database("edge_full")
    port = free_port()  # InfluxDB is down: its cursor holds, the outbox fills up
    config = write_config(tmp_path, mosquitto.port, f"http://127.0.0.1:{port}", "edge_full")
    async with EdgeAgent(config, backoff=FAST) as agent:
        await until(lambda: agent.health().ok)
        assert agent.http is not None
        await publish(mosquitto, "plc/l1/tested", *[1] * 1200)
        await until(lambda: agent.health().outbox_full, 20)
        status, health = await get_json(f"{agent.http.url}/healthz")
        assert status == 503
        assert health["outbox"]["full"] is True
        assert "outbox is full" in " ".join(health["problems"])
        held = agent.total(TESTED)
        assert held is not None and held < 1200
        async with tcp_relay(port, influxd.port):
            await until(lambda: agent.total(TESTED) == 1200, 30)
            await agent.wait_synced(30)
        assert agent.health().ok
    (row,) = influxd.query("SELECT count(total), last(total) FROM production", "edge_full")
    assert (row["count"], row["last"]) == (1200, 1200)


async def test_healthz_is_503_while_a_source_is_down(
    tmp_path: Path, mosquitto: MosquittoService
) -> None:
    config = write_config(tmp_path, free_port(), None, "unused")  # the source broker is absent
    config = EdgeConfig(
        config.settings.model_copy(
            update={
                "live_bus": config.settings.live_bus.model_copy(update={"port": mosquitto.port})
            }
        ),
        config.plant,
    )
    async with EdgeAgent(config, backoff=FAST) as agent:
        assert agent.http is not None
        await asyncio.sleep(0.3)
        status, health = await get_json(f"{agent.http.url}/healthz")
    assert status == 503
    assert health["problems"] == ["source eol-mqtt is not connected"]
    assert json.dumps(health)  # plain JSON all the way down


async def test_a_reset_is_confirmed_by_time_when_no_reading_follows(
    tmp_path: Path, mosquitto: MosquittoService
) -> None:
    config = write_config(tmp_path, mosquitto.port, None, "unused")
    rules = TotalRules(confirm_after_s=0.3)
    async with EdgeAgent(config, backoff=FAST, rules=rules, expire_every_s=0.05) as agent:
        await until(lambda: agent.health().ok)
        await publish(mosquitto, "plc/l1/passed", 500, 501, 3)  # then the PLC stays quiet
        await until(lambda: agent.total(PASSED) == 1_000_004)
        decisions = agent.health().decisions[str(PASSED)]
    assert decisions["reset"] == 1


@asynccontextmanager
async def status_messages(
    tmp_path: Path, mosquitto: MosquittoService
) -> AsyncIterator[tuple[EdgeConfig, AsyncIterator[aiomqtt.Message]]]:
    """An edge's config and its status messages, subscribed before it starts (15 s at most)."""
    config = write_config(tmp_path, mosquitto.port, None, "unused")
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client, asyncio.timeout(15):
        await client.subscribe(edge_status_topic("edge-t"), qos=1)
        yield config, aiter(client.messages)


async def test_run_edge_runs_until_cancelled_and_says_offline_when_stopped(
    tmp_path: Path, mosquitto: MosquittoService
) -> None:
    async with status_messages(tmp_path, mosquitto) as (config, messages):
        running = asyncio.create_task(run_edge(config))
        online = await anext(messages)
        assert body(online)["state"] == "online" and body(online)["lines"] == ["l1"]
        assert not running.done()
        running.cancel()
        await asyncio.wait([running])
        assert running.cancelled()
        offline = await anext(messages)
        assert body(offline)["state"] == "offline"
    assert (tmp_path / "state" / "outbox.sqlite").exists()


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
async def test_a_stop_signal_stops_run_edge_cleanly_even_during_its_start(
    tmp_path: Path, mosquitto: MosquittoService, number: signal.Signals
) -> None:
    """The signal arrives while the edge starts (before its first await is done): the stop is
    a flag, so the edge stops once started instead of losing it."""
    async with status_messages(tmp_path, mosquitto) as (config, messages):
        running = asyncio.create_task(run_edge(config))
        await asyncio.sleep(0)  # run_edge has set up its signal handlers and begun the start
        os.kill(os.getpid(), number)
        await asyncio.wait([running])
        states = [body(await anext(messages))["state"] for _ in range(2)]
    assert not running.cancelled() and running.exception() is None  # a clean stop
    assert states == ["online", "offline"]


T0 = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)


def plc(address: str, value: int, second: float, quality: Quality = Quality.GOOD) -> Reading:
    at = T0 + dt.timedelta(seconds=second)
    return Reading("plc", address, value, at, at, at, quality)


def book(states: dict[str, dict[str, object]] | None = None) -> CounterBook:
    addresses = {
        ("plc", "passed"): MappedCounter(PASSED, Counter(name="passed", bits=16)),
        ("plc", "tested"): MappedCounter(TESTED, Counter(name="tested", bits=16)),
    }
    return CounterBook(addresses, states or {}, TotalRules(confirm_after_s=5))


def test_counter_book_rows_and_states_of_what_changed() -> None:
    counters = book()
    now = to_ns(T0)
    rows, states = counters.apply([plc("passed", 10, 0), plc("tested", 5, 0)], now)
    assert rows == [
        (str(PASSED), to_ns(T0), 10, 10, 0, "good"),
        (str(TESTED), to_ns(T0), 5, 5, 0, "good"),
    ]
    assert {key: json.loads(text)["total"] for key, text in states.items()} == {
        str(PASSED): 10,
        str(TESTED): 5,
    }
    # unchanged and bad readings change no state: nothing to store
    rows, states = counters.apply(
        [plc("passed", 10, 1), plc("tested", 0, 1, Quality.BAD), plc("nowhere", 1, 1)], now
    )
    assert (rows, states) == ([], {})
    assert counters.unmapped == {("plc", "nowhere"): 1}
    rows, states = counters.apply([plc("passed", 12, 2)], now)
    assert [row[2:5] for row in rows] == [(12, 12, 2)] and list(states) == [str(PASSED)]
    assert counters.decisions()[str(PASSED)] == {"first": 1, "unchanged": 1, "increase": 1}
    assert counters.decisions()[str(TESTED)] == {"first": 1, "bad_quality": 1}
    assert counters.totals() == {str(PASSED): 12, str(TESTED): 5}


def test_counter_book_confirms_held_drops_by_time_also_after_a_restart() -> None:
    counters = book()
    counters.apply([plc("passed", 500, 0), plc("tested", 50, 0)], to_ns(T0))
    _, states = counters.apply([plc("passed", 3, 1)], to_ns(T0) + NS_PER_S)  # a drop: held
    assert json.loads(states[str(PASSED)])["pending_raw"] == 3
    assert counters.total(PASSED) == 500
    rows, _ = counters.apply([], to_ns(T0) + 5 * NS_PER_S)  # not confirmed yet
    assert rows == []
    restarted = book({key: json.loads(text) for key, text in states.items()})
    for held in (counters, restarted):
        rows, states = held.apply([], to_ns(T0) + 7 * NS_PER_S)
        assert [row[:5] for row in rows] == [(str(PASSED), to_ns(T0) + NS_PER_S, 3, 503, 3)]
        assert list(states) == [str(PASSED)]
        assert held.decisions()[str(PASSED)]["reset"] == 1
        assert held.apply([], to_ns(T0) + 9 * NS_PER_S) == ([], {})  # decided once


async def test_intake_hands_over_lists_in_order_and_blocks_when_full() -> None:
    intake = Intake(3)
    readings = [plc("passed", n, n) for n in range(5)]
    assert [intake.add(r) for r in readings[:4]] == [True, True, True, False]
    waiting = asyncio.create_task(intake.put(readings[3]))
    await asyncio.sleep(0.05)
    assert not waiting.done() and len(intake) == 3  # back-pressure: the reader waits
    assert intake.take(2) == readings[:2]
    async with asyncio.timeout(5):
        await waiting
    assert intake.take(10) == readings[2:4]
    assert not intake

    woken = asyncio.create_task(intake.wait_for(2))
    intake.add(readings[4])
    await asyncio.sleep(0.05)
    assert not woken.done()
    intake.add(readings[0])
    async with asyncio.timeout(5):
        await woken
    assert intake.take(10) == [readings[4], readings[0]]
