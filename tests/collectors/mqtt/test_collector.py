"""MqttCollector against a real Mosquitto: payloads, rejections, sessions, acknowledgement."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging

import pytest

from collectors.mqtt.payload import Rejection
from taktline.records import Quality
from tests.collectors.helpers import collect_until, wait_for
from tests.collectors.mqtt.helpers import device, mqtt_source, running, take
from tests.fixtures.services import MosquittoService

PLAIN = "plant/fa1/eol/passed"
JSON = "plant/paint1/topcoat/produced"
MAPPINGS = {
    PLAIN: {"topic": PLAIN, "counter": "neustadt/final/fa1/eol/passed"},
    JSON: {
        "topic": JSON,
        "counter": "neustadt/paint/paint1/topcoat/produced",
        "value": "count",
        "timestamp": "ts",
    },
}


def table(*topics: str) -> list[dict[str, str]]:
    return [MAPPINGS[topic] for topic in topics]


async def test_plain_and_json_payloads_arrive(mosquitto: MosquittoService) -> None:
    async with running(mqtt_source(mosquitto, topics=table(PLAIN, JSON))) as collector:
        async with device(mosquitto) as dev:
            await dev.publish(PLAIN, b"16250210", qos=1)
            await dev.publish(JSON, json.dumps({"count": 7, "ts": 1_795_686_062_123}), qos=1)
            await dev.publish(JSON, json.dumps({"count": 8, "ts": "2026-11-26T09:41:03Z"}), qos=1)
        got = await take(collector, 3)

    assert [(r.address, r.value) for r in got] == [(PLAIN, 16_250_210), (JSON, 7), (JSON, 8)]
    assert got[0].source_ts is None
    assert got[1].source_ts == dt.datetime(2026, 11, 26, 9, 41, 2, 123000, tzinfo=dt.UTC)
    assert got[2].source_ts == dt.datetime(2026, 11, 26, 9, 41, 3, tzinfo=dt.UTC)
    assert all(r.quality is Quality.GOOD and r.source_id == "src" for r in got)
    assert all(r.server_ts is None and r.message_id is None for r in got)
    assert all(r.receipt is not None for r in got)  # QoS 1: acknowledged by the edge
    assert collector.health.last_data_at == got[-1].received_at
    assert collector.health.rejected == 0


async def test_qos0_readings_carry_no_receipt(mosquitto: MosquittoService) -> None:
    async with running(mqtt_source(mosquitto, topics=table(PLAIN), qos=0)) as collector:
        async with device(mosquitto) as dev:
            await dev.publish(PLAIN, b"3", qos=0)
        (reading,) = await take(collector, 1)
    assert reading.value == 3 and reading.receipt is None


async def test_every_json_variant(mosquitto: MosquittoService) -> None:
    base = "lab/bench1"
    variants = [
        {
            "topic": f"{base}/s",
            "counter": "s/a/l/st/c1",
            "value": "n",
            "timestamp": "t",
            "timestamp_unit": "s",
        },
        {"topic": f"{base}/ms", "counter": "s/a/l/st/c2", "value": "n", "timestamp": "t"},
        {
            "topic": f"{base}/us",
            "counter": "s/a/l/st/c3",
            "value": "n",
            "timestamp": "t",
            "timestamp_unit": "us",
        },
        {
            "topic": f"{base}/ns",
            "counter": "s/a/l/st/c4",
            "value": "r.0.n",
            "timestamp": "t",
            "timestamp_unit": "ns",
        },
        {"topic": f"{base}/iso", "counter": "s/a/l/st/c5", "value": "n", "timestamp": "t"},
        {
            "topic": f"{base}/each",
            "counter": "s/a/l/st/c6",
            "each_message_counts": True,
            "message_id": "id",
        },
        {"topic": f"{base}/qty", "counter": "s/a/l/st/c7", "value": "qty", "message_id": "id"},
    ]
    at = dt.datetime(2026, 11, 26, 9, 41, 2, 123456, tzinfo=dt.UTC)
    seconds = int(at.timestamp())
    payloads = [
        (f"{base}/s", {"n": 1, "t": seconds}),
        (f"{base}/ms", {"n": 2, "t": seconds * 1000 + 123}),
        (f"{base}/us", {"n": 3, "t": seconds * 1_000_000 + 123_456}),
        (f"{base}/ns", {"r": [{"n": 4}], "t": seconds * 1_000_000_000 + 123_456_789}),
        (f"{base}/iso", {"n": 5, "t": "2026-11-26T10:41:02.123456+01:00"}),
        (f"{base}/each", {"id": "vin-1", "result": "pass"}),
        (f"{base}/qty", {"id": 77, "qty": 12}),
    ]
    async with running(mqtt_source(mosquitto, topics=variants)) as collector:
        async with device(mosquitto) as dev:
            for topic, body in payloads:
                await dev.publish(topic, json.dumps(body), qos=1)
        got = {r.address.rsplit("/", 1)[1]: r for r in await take(collector, len(payloads))}

    assert {k: r.value for k, r in got.items()} == {
        "s": 1,
        "ms": 2,
        "us": 3,
        "ns": 4,
        "iso": 5,
        "each": None,
        "qty": 12,
    }
    assert got["s"].source_ts == at.replace(microsecond=0)
    assert got["ms"].source_ts == at.replace(microsecond=123000)
    assert got["us"].source_ts == got["ns"].source_ts == got["iso"].source_ts == at
    assert got["each"].source_ts is None
    assert (got["each"].message_id, got["qty"].message_id) == ("vin-1", "77")


async def test_duplicates_by_message_id_are_dropped(mosquitto: MosquittoService) -> None:
    mapping = {
        "topic": "eol/results",
        "counter": "s/a/l/eol/tested",
        "each_message_counts": True,
        "message_id": "vin",
    }
    source = mqtt_source(mosquitto, topics=[mapping], dedupe_window=2)
    async with running(source) as collector:
        async with device(mosquitto) as dev:
            for vin in ["A", "B", "A", "B", "C", "A", "D"]:  # window 2: the last A is new again
                await dev.publish("eol/results", json.dumps({"vin": vin}), qos=1)
        got = await take(collector, 5)
        await wait_for(lambda: collector.health.rejected_by_reason.get("duplicate") == 2, "dups")
    assert [r.message_id for r in got] == ["A", "B", "C", "A", "D"]
    assert collector.health.rejected == 0  # a duplicate is no bad input


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_unacknowledged_messages_come_again_and_acknowledged_ones_do_not(
    mosquitto: MosquittoService, protocol: str
) -> None:
    """Manual acknowledgement and the persistent session (clean session false on 3.1.1,
    clean start false and a session expiry on 5)."""
    mapping = {
        "topic": "eol/results",
        "counter": "s/a/l/eol/tested",
        "value": "n",
        "message_id": "id",
    }
    source = mqtt_source(mosquitto, protocol, topics=[mapping])
    async with running(source) as collector:
        async with device(mosquitto) as dev:
            for n in range(1, 6):
                await dev.publish("eol/results", json.dumps({"id": n, "n": n}), qos=1)
        first = await take(collector, 5, ack=False)
        collector.acknowledge([r.receipt for r in first[:2] if r.receipt is not None])
        await asyncio.sleep(0.3)  # the two PUBACKs reach the broker before we leave
    async with running(source) as collector:
        again = await take(collector, 3)  # 3, 4, 5 were never acknowledged: redelivered
        async with device(mosquitto) as dev:
            await dev.publish("eol/results", json.dumps({"id": 6, "n": 6}), qos=1)
        (after,) = await take(collector, 1)
        await asyncio.sleep(0.3)
    async with running(source) as collector:
        async with device(mosquitto) as dev:
            await dev.publish("eol/results", json.dumps({"id": 7, "n": 7}), qos=1)
        (last,) = await take(collector, 1)  # nothing of the earlier sessions came back
    assert [r.value for r in first] == [1, 2, 3, 4, 5]
    assert [r.value for r in again] == [3, 4, 5]
    assert (after.value, last.value) == (6, 7)


async def test_malformed_messages_are_counted_per_reason_and_good_ones_still_arrive(
    mosquitto: MosquittoService, caplog: pytest.LogCaptureFixture
) -> None:
    bad = [
        (JSON, b"{not json"),
        (JSON, json.dumps({"ts": 0}).encode()),
        (JSON, json.dumps({"count": "7", "ts": 0}).encode()),
        (JSON, json.dumps({"count": -1, "ts": 0}).encode()),
        (JSON, json.dumps({"count": 1.5, "ts": 0}).encode()),
        (JSON, b'{"count": 1, "pad": "' + b"x" * 70_000 + b'"}'),
        (PLAIN, b"forty-two"),
        ("plant/unmapped/x", b"1"),
    ]
    caplog.set_level(logging.WARNING, logger="collectors.mqtt")
    topics = [*table(PLAIN, JSON), {"topic": "plant/unmapped/x", "counter": "s/a/l/st/c"}]
    source = mqtt_source(mosquitto, topics=table(PLAIN, JSON))
    async with running(mqtt_source(mosquitto, topics=topics)):
        pass  # leaves a subscription to plant/unmapped/x in the persistent session
    async with running(source) as collector:
        async with device(mosquitto) as dev:
            await dev.publish(PLAIN, b"1", qos=1)
            for topic, payload in bad:
                await dev.publish(topic, payload, qos=1)
            await dev.publish(PLAIN, b"2", qos=1)
        got = await take(collector, 2)
        await wait_for(lambda: collector.health.rejected == len(bad), "all bad ones counted")

    assert [r.value for r in got] == [1, 2]
    assert collector.health.rejected_by_reason == {
        Rejection.NOT_JSON: 1,
        Rejection.MISSING_PATH: 1,
        Rejection.WRONG_TYPE: 1,
        Rejection.NEGATIVE: 1,
        Rejection.NOT_INTEGER: 1,
        Rejection.TOO_LARGE: 1,
        Rejection.NOT_A_NUMBER: 1,
        Rejection.UNKNOWN_TOPIC: 1,
    }
    logged = [r.getMessage() for r in caplog.records if "rejected message" in r.getMessage()]
    assert len(logged) == 3  # once per topic per minute
    assert {m.split(" on ")[1].split(":")[0] for m in logged} == {JSON, PLAIN, "plant/unmapped/x"}


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_broker_restart_resubscribes_and_later_messages_arrive(
    mosquitto: MosquittoService, protocol: str
) -> None:
    async with running(mqtt_source(mosquitto, protocol, topics=table(PLAIN))) as collector:
        async with device(mosquitto) as dev:
            await dev.publish(PLAIN, b"10", qos=1)
        await take(collector, 1)

        await asyncio.to_thread(mosquitto.restart)
        await wait_for(lambda: collector.health.reconnects == 1, "reconnected")
        assert collector.health.connected
        assert collector.health.last_error is not None

        async with device(mosquitto) as dev:
            await dev.publish(PLAIN, b"11", qos=1)
        got = await collect_until(collector.readings(), lambda seen: seen[-1].value == 11)
        assert [r.value for r in got] == [11]
