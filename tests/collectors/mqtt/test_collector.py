"""MqttCollector against the real Mosquitto fixture: payloads, rejections, broker restarts."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiomqtt
import pytest

from collectors.mqtt import MqttCollector
from collectors.mqtt.payload import Rejection
from collectors.support import Backoff
from taktline.model.sources import MqttSource
from taktline.records import Quality
from tests.collectors.helpers import collect_until, wait_for
from tests.fixtures.services import MosquittoService

PLAIN = "plant/fa1/eol/passed"
JSON = "plant/paint1/topcoat/produced"


def source_for(mosquitto: MosquittoService, topics: list[str], protocol: str = "5") -> MqttSource:
    mappings: dict[str, dict[str, Any]] = {
        PLAIN: {"topic": PLAIN, "counter": "neustadt/final/fa1/eol/passed"},
        JSON: {
            "topic": JSON,
            "counter": "neustadt/paint/paint1/topcoat/produced",
            "value": "count",
            "timestamp": "ts",
        },
    }
    return MqttSource.model_validate(
        {
            "type": "mqtt",
            "id": "paint-mqtt",
            "broker": {
                "host": mosquitto.host,
                "port": mosquitto.port,
                "protocol": protocol,
                "client_id": "taktline-test-collector",
            },
            "topics": [mappings[topic] for topic in topics],
        }
    )


@asynccontextmanager
async def running(source: MqttSource) -> AsyncIterator[MqttCollector]:
    async with MqttCollector(source, backoff=Backoff(0.1, 1.0)) as collector:
        await wait_for(lambda: collector.health.connected, "collector subscribed")
        yield collector


@asynccontextmanager
async def publisher(mosquitto: MosquittoService) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="test-device") as client:
        yield client


async def test_plain_and_json_payloads_arrive(mosquitto: MosquittoService) -> None:
    async with running(source_for(mosquitto, [PLAIN, JSON])) as collector:
        readings = collector.readings()
        async with publisher(mosquitto) as device:
            await device.publish(PLAIN, b"16250210", qos=1)
            await device.publish(JSON, json.dumps({"count": 7, "ts": 1_795_686_062_123}), qos=1)
            await device.publish(
                JSON, json.dumps({"count": 8, "ts": "2026-11-26T09:41:03Z"}), qos=1
            )
        got = await collect_until(readings, lambda seen: len(seen) == 3)

    assert [(r.address, r.value) for r in got] == [(PLAIN, 16_250_210), (JSON, 7), (JSON, 8)]
    assert got[0].source_ts is None
    assert got[1].source_ts == dt.datetime(2026, 11, 26, 9, 41, 2, 123000, tzinfo=dt.UTC)
    assert got[2].source_ts == dt.datetime(2026, 11, 26, 9, 41, 3, tzinfo=dt.UTC)
    assert all(r.quality is Quality.GOOD and r.source_id == "paint-mqtt" for r in got)
    assert all(r.server_ts is None and r.message_id is None for r in got)
    assert collector.health.last_data_at == got[-1].received_at
    assert collector.health.rejected == 0


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
    ]
    caplog.set_level(logging.WARNING, logger="collectors.mqtt")
    async with running(source_for(mosquitto, [PLAIN, JSON])) as collector:
        readings = collector.readings()
        async with publisher(mosquitto) as device:
            await device.publish(PLAIN, b"1", qos=1)
            for topic, payload in bad:
                await device.publish(topic, payload, qos=1)
            await device.publish(PLAIN, b"2", qos=1)
        got = await collect_until(readings, lambda seen: seen[-1].value == 2)
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
    }
    logged = [r.getMessage() for r in caplog.records if "rejected message" in r.getMessage()]
    assert len(logged) == 2  # once per topic per minute
    assert {m.split(" on ")[1].split(":")[0] for m in logged} == {JSON, PLAIN}


async def test_a_topic_left_in_the_persistent_session_is_rejected_as_unknown(
    mosquitto: MosquittoService,
) -> None:
    async with running(source_for(mosquitto, [PLAIN, JSON], protocol="3.1.1")):
        pass  # the broker keeps this session (clean_session false) with both subscriptions
    async with running(source_for(mosquitto, [PLAIN], protocol="3.1.1")) as collector:
        readings = collector.readings()
        async with publisher(mosquitto) as device:
            await device.publish(JSON, json.dumps({"count": 1, "ts": 0}), qos=1)
            await device.publish(PLAIN, b"5", qos=1)
        got = await collect_until(readings, lambda seen: seen[-1].value == 5)
        assert [r.address for r in got] == [PLAIN]
        assert collector.health.rejected_by_reason == {Rejection.UNKNOWN_TOPIC: 1}


async def test_broker_restart_resubscribes_and_later_messages_arrive(
    mosquitto: MosquittoService,
) -> None:
    # MQTT 5 without a session expiry: the restarted broker has no subscription for us, so
    # only the collector's own resubscription brings the later message.
    async with running(source_for(mosquitto, [PLAIN])) as collector:
        readings = collector.readings()
        async with publisher(mosquitto) as device:
            await device.publish(PLAIN, b"10", qos=1)
        await collect_until(readings, lambda seen: seen[-1].value == 10)

        await asyncio.to_thread(mosquitto.restart)
        await wait_for(lambda: collector.health.reconnects == 1, "reconnected")
        assert collector.health.connected
        assert collector.health.last_error is not None

        async with publisher(mosquitto) as device:
            await device.publish(PLAIN, b"11", qos=1)
        got = await collect_until(readings, lambda seen: seen[-1].value == 11)
        assert [r.value for r in got] == [11]
