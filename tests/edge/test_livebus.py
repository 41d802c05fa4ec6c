"""The live-bus sink against a real Mosquitto: retained counter topics, status and last will."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from edge.sinks.forwarder import Backoff
from edge.sinks.livebus import LiveBusSink
from taktline.livebus import COUNTER_SUBSCRIPTION, edge_status_topic
from taktline.model.connections import MqttConnection
from tests.edge.helpers import until, update
from tests.fixtures.services import MosquittoService

REPO = Path(__file__).resolve().parents[2]
FAST = Backoff(initial_s=0.05, max_s=0.5)


def connection(broker: MosquittoService) -> MqttConnection:
    return MqttConnection(host=broker.host, port=broker.port)


async def collect(broker: MosquittoService, topic: str, count: int) -> list[aiomqtt.Message]:
    """The first `count` messages on `topic` for a new subscriber (retained ones first)."""
    messages: list[aiomqtt.Message] = []
    async with aiomqtt.Client(broker.host, broker.port) as client, asyncio.timeout(10):
        await client.subscribe(topic, qos=1)
        async for message in client.messages:
            messages.append(message)
            if len(messages) == count:
                return messages
    raise AssertionError("unreachable")


def body(message: aiomqtt.Message) -> dict[str, Any]:
    assert isinstance(message.payload, bytes)
    data: dict[str, Any] = json.loads(message.payload)
    return data


async def wait_connected(sink: LiveBusSink) -> None:
    await until(lambda: sink.health.connected)


async def test_updates_are_retained_on_their_counter_topic(mosquitto: MosquittoService) -> None:
    sink = LiveBusSink(connection(mosquitto), "edge-1", ["fa1"], FAST)
    async with sink:
        await wait_connected(sink)
        await sink.ready()
        await sink.send([update(16_250_316), update(16_250_317)])
    (message,) = await collect(mosquitto, COUNTER_SUBSCRIPTION, 1)  # retained: the latest
    assert message.retain
    assert message.topic.value == "taktline/v1/neustadt/final/fa1/eol/passed"
    assert body(message) == {
        "total": 16_250_317,
        "delta": 1,
        "raw": 16_250_317 % 65536,
        "quality": "good",
        "ts": "2027-06-02T11:39:39.123Z",  # T0 + 16,250,317 s, ms, UTC, Z
    }


async def test_a_large_batch_leaves_the_newest_total_retained(
    mosquitto: MosquittoService,
) -> None:
    sink = LiveBusSink(connection(mosquitto), "edge-1", ["fa1"], FAST)
    async with sink:
        await wait_connected(sink)
        await sink.send([update(total) for total in range(1, 301)])
    (message,) = await collect(mosquitto, COUNTER_SUBSCRIPTION, 1)
    assert body(message)["total"] == 300


async def test_status_online_on_connect_and_offline_on_clean_stop(
    mosquitto: MosquittoService,
) -> None:
    sink = LiveBusSink(connection(mosquitto), "edge-1", ["fa1", "fa2"], FAST)
    async with sink:
        await wait_connected(sink)
        (online,) = await collect(mosquitto, edge_status_topic("edge-1"), 1)
        assert online.retain
        assert body(online) | {"ts": None} == {
            "edge_id": "edge-1",
            "state": "online",
            "lines": ["fa1", "fa2"],
            "ts": None,
        }
    (offline,) = await collect(mosquitto, edge_status_topic("edge-1"), 1)
    assert body(offline)["state"] == "offline"


async def test_reconnects_after_the_broker_restarts(mosquitto: MosquittoService) -> None:
    sink = LiveBusSink(connection(mosquitto), "edge-1", ["fa1"], FAST)
    async with sink:
        await wait_connected(sink)
        await asyncio.to_thread(mosquitto.restart)
        # the sink notices the drop, then connects again
        await until(lambda: sink.health.connected and sink.health.last_error is not None, 15)
        await sink.send([update(7)])
    (message,) = await collect(mosquitto, COUNTER_SUBSCRIPTION, 1)
    assert body(message)["total"] == 7


HOLDER = """
import asyncio, sys
from edge.sinks.livebus import LiveBusSink
from taktline.model.connections import MqttConnection

async def main() -> None:
    sink = LiveBusSink(MqttConnection(host="127.0.0.1", port=int(sys.argv[1])), "edge-9", ["fa1"])
    async with sink:
        while not sink.health.connected:
            await asyncio.sleep(0.02)
        print("connected", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_last_will_marks_the_edge_offline_when_its_process_dies(
    mosquitto: MosquittoService,
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        str(mosquitto.port),
        stdout=asyncio.subprocess.PIPE,
        env=os.environ | {"PYTHONPATH": str(REPO)},
    )
    assert process.stdout is not None
    async with asyncio.timeout(15):
        assert await process.stdout.readline() == b"connected\n"
    status = edge_status_topic("edge-9")
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client, asyncio.timeout(10):
        await client.subscribe(status, qos=1)
        messages = aiter(client.messages)
        first = await anext(messages)
        assert body(first)["state"] == "online"
        process.send_signal(signal.SIGKILL)
        await process.wait()
        will = await anext(messages)
        assert body(will) == body(will) | {"edge_id": "edge-9", "state": "offline"}
    (kept,) = await collect(mosquitto, status, 1)
    assert kept.retain and body(kept)["state"] == "offline"


async def test_online_status_is_refreshed_as_a_sign_of_life(
    mosquitto: MosquittoService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line that makes no units must not look like a dead feed on the screens."""
    monkeypatch.setattr("edge.sinks.livebus.STATUS_EVERY_S", 0.2)
    sink = LiveBusSink(connection(mosquitto), "edge-1", ["fa1"], FAST)
    async with sink:
        await wait_connected(sink)
        first, second, third = await collect(mosquitto, edge_status_topic("edge-1"), 3)
    states = [body(message)["state"] for message in (first, second, third)]
    stamps = [body(message)["ts"] for message in (first, second, third)]
    assert states == ["online"] * 3
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
