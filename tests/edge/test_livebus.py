"""The live-bus sink against a real Mosquitto: retained counter topics, status and last will."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from edge.outbox import Outbox
from edge.sinks.forwarder import Backoff, forward
from edge.sinks.livebus import LiveBusSink
from edge.sinks.livebus_messages import Stamps, coalesce, counter_body
from taktline.livebus import (
    COUNTER_SUBSCRIPTION,
    CounterMessage,
    counter_topic,
    edge_status_topic,
    format_ts,
    parse_counter_topic,
)
from taktline.localbroker import free_port
from taktline.model.connections import MqttConnection
from taktline.model.paths import CounterPath
from taktline.records import CounterUpdate, Quality
from tests.edge.helpers import PASSED, T0, until, update
from tests.fixtures.services import MosquittoService, require_binary

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
        await sink.send([update(16_250_316)])
        await sink.send([update(16_250_317)])  # a batch of its own: its delta is its own
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


def station_counter(index: int) -> CounterPath:
    return CounterPath("neustadt", "final", "fa1", f"st{index // 100}", f"c{index}")


def interleaved_batch(counters: int, rounds: int) -> list[CounterUpdate]:
    """`rounds` updates of each counter, interleaved; round r adds r + 1 to every counter."""
    totals = [1000 * index for index in range(counters)]
    batch: list[CounterUpdate] = []
    for r in range(rounds):
        for index in range(counters):
            totals[index] += r + 1
            batch.append(update(totals[index], station_counter(index), delta=r + 1))
    return batch


def newest_and_deltas(batch: list[CounterUpdate]) -> dict[str, tuple[int, int]]:
    """Per counter topic: the newest total and the sum of the deltas."""
    expected: dict[str, tuple[int, int]] = {}
    for item in batch:
        topic = counter_topic(item.counter)
        expected[topic] = (item.total, expected.get(topic, (0, 0))[1] + item.delta)
    return expected


def test_the_body_is_the_contract_message_with_the_summed_delta() -> None:
    first = CounterUpdate(PASSED, T0, 7, 107, 2)
    newest = CounterUpdate(PASSED, T0 + dt.timedelta(seconds=1), None, 110, 3, Quality.UNCERTAIN)
    (coalesced,) = coalesce([first, newest])
    assert (coalesced.update, coalesced.delta) == (newest, 5)
    expected = CounterMessage.from_update(newest).model_copy(update={"delta": 5})
    assert json.loads(counter_body(coalesced.update, 5)) == json.loads(expected.model_dump_json())
    assert json.loads(counter_body(first, 2)) == json.loads(
        CounterMessage.from_update(first).model_dump_json()
    )


def test_counters_are_coalesced_in_order_of_their_first_update_with_summed_deltas() -> None:
    other = CounterPath("neustadt", "final", "fa1", "eol", "failed")
    batch = [update(1), CounterUpdate(other, T0, 4, 4, 4), update(2), update(3)]
    assert [(c.update, c.delta) for c in coalesce(batch)] == [
        (batch[3], batch[0].delta + batch[2].delta + batch[3].delta),
        (batch[1], 4),
    ]


def test_stamps_format_like_format_ts() -> None:
    """Cached by the second, also across second boundaries, and for datetimes not in UTC."""
    stamps = Stamps()
    base = dt.datetime(2026, 11, 26, 23, 59, 58, tzinfo=dt.UTC)
    times = [base + dt.timedelta(microseconds=us) for us in range(0, 3_000_000, 9_997)]
    times += [base + dt.timedelta(seconds=1, microseconds=us) for us in (0, 999, 1000, 999_999)]
    times += [
        base.astimezone(dt.timezone(dt.timedelta(hours=2))),
        base.replace(tzinfo=None),
        dt.datetime(1601, 1, 1, tzinfo=dt.UTC),
    ]
    assert [stamps(ts) for ts in times + times] == [format_ts(ts) for ts in times + times]


async def test_a_batch_publishes_each_counters_newest_total_once(
    mosquitto: MosquittoService,
) -> None:
    """2,000 updates to 500 counters: 500 retained messages, the newest totals, summed deltas."""
    batch = interleaved_batch(500, 4)
    sentinel = update(1, PASSED)
    seen: list[aiomqtt.Message] = []
    sink = LiveBusSink(connection(mosquitto), "edge-1", ["fa1"], FAST)
    async with (
        aiomqtt.Client(mosquitto.host, mosquitto.port) as watcher,
        asyncio.timeout(30),
    ):
        await watcher.subscribe(COUNTER_SUBSCRIPTION, qos=1)
        async with sink:
            await wait_connected(sink)
            await sink.send(batch)
            await sink.send([sentinel])  # same connection: it arrives after the whole batch
        async for message in watcher.messages:
            if message.topic.value == counter_topic(PASSED):
                break
            seen.append(message)
    assert len(seen) == 500
    assert {m.topic.value: (body(m)["total"], body(m)["delta"]) for m in seen} == (
        newest_and_deltas(batch)
    )
    retained = await collect(mosquitto, COUNTER_SUBSCRIPTION, 501)
    assert all(message.retain for message in retained)
    kept = {m.topic.value: (body(m)["total"], body(m)["delta"]) for m in retained}
    assert kept == newest_and_deltas(batch) | {counter_topic(PASSED): (1, 1)}


async def test_a_broker_restart_mid_batch_retries_it_and_the_retained_totals_end_right(
    mosquitto: MosquittoService, tmp_path: Path
) -> None:
    batch = interleaved_batch(500, 4)
    sink = LiveBusSink(connection(mosquitto), "edge-1", ["fa1"], FAST)
    async with Outbox(tmp_path / "o.db", [sink.name], max_records=10_000) as outbox, sink:
        await outbox.append(batch, {})
        await wait_connected(sink)
        assert mosquitto.process is not None
        mosquitto.process.send_signal(signal.SIGSTOP)  # no PUBACK comes: the batch stays open
        forwarding = asyncio.create_task(forward(sink, outbox, FAST))
        try:
            await until(lambda: sink.in_flight > 0)
            assert outbox.cursor(sink.name) == 0
            mosquitto.process.kill()  # the broker dies with the batch unacknowledged
            await asyncio.to_thread(mosquitto.process.wait)
            await asyncio.to_thread(mosquitto.start)
            await until(lambda: outbox.depth(sink.name) == 0, 30)
        finally:
            forwarding.cancel()
            await asyncio.gather(forwarding, return_exceptions=True)
        assert sink.health.errors >= 1  # the first attempt failed and was sent again
        assert sink.health.delivered == len(batch)
    retained = await collect(mosquitto, COUNTER_SUBSCRIPTION, 500)
    totals = {m.topic.value: body(m)["total"] for m in retained}
    assert totals == {topic: total for topic, (total, _) in newest_and_deltas(batch).items()}
    assert all(parse_counter_topic(topic) is not None for topic in totals)


async def test_a_small_receive_maximum_sends_the_batch_window_by_window(tmp_path: Path) -> None:
    """An MQTT 5 broker that takes 20 unacknowledged messages: 500 go 19 at a time."""
    conf = tmp_path / "mosquitto.conf"
    port = free_port()
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 20\n",
        encoding="utf-8",
    )
    broker = MosquittoService("127.0.0.1", port, conf, require_binary("mosquitto", "mosquitto"))
    broker.start()
    try:
        batch = interleaved_batch(500, 1)
        sink = LiveBusSink(connection(broker), "edge-1", ["fa1"], FAST)
        async with sink:
            await wait_connected(sink)
            assert sink.window == 19
            await sink.send(batch)
        retained = await collect(broker, COUNTER_SUBSCRIPTION, 500)
        assert {m.topic.value: body(m)["total"] for m in retained} == {
            topic: total for topic, (total, _) in newest_and_deltas(batch).items()
        }
    finally:
        broker.stop()


async def test_a_fast_counter_is_rate_limited_and_coalesced_without_losing_units(
    mosquitto: MosquittoService, tmp_path: Path
) -> None:
    """One counter at 1,000 updates/s for 1 s, the sink at 10 messages/s: about ten messages,
    whose deltas add up to every unit and whose last total is the newest."""
    sink = LiveBusSink(connection(mosquitto), "edge-1", ["fa1"], FAST, max_rate_hz=10)
    seen: list[dict[str, Any]] = []
    async with (
        Outbox(tmp_path / "o.db", [sink.name], max_records=100_000) as outbox,
        aiomqtt.Client(mosquitto.host, mosquitto.port) as watcher,
        sink,
    ):
        await watcher.subscribe(counter_topic(PASSED), qos=1)
        await wait_connected(sink)
        forwarding = asyncio.create_task(forward(sink, outbox, FAST))
        try:
            for tick in range(100):  # 10 updates every 10 ms
                await outbox.append(
                    [update(total) for total in range(tick * 10 + 1, tick * 10 + 11)], {}
                )
                await asyncio.sleep(0.01)
            await until(lambda: outbox.depth(sink.name) == 0)
        finally:
            forwarding.cancel()
            await asyncio.gather(forwarding, return_exceptions=True)
        async with asyncio.timeout(10):
            async for message in watcher.messages:
                seen.append(body(message))
                if seen[-1]["total"] == 1000:
                    break
    assert sum(item["delta"] for item in seen) == 1000
    assert 3 <= len(seen) <= 25  # ~1.5 s at most 10/s, not 1,000 messages
