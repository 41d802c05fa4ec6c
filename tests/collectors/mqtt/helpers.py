"""Building MQTT sources, running a collector that acknowledges like the edge, publishing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiomqtt

from collectors.mqtt import MqttCollector
from collectors.support import Backoff
from taktline.model.sources import MqttSource
from taktline.records import Reading
from tests.collectors.helpers import collect_until, wait_for
from tests.fixtures.services import MosquittoService


def mqtt_source(mosquitto: MosquittoService, protocol: str = "5", **fields: Any) -> MqttSource:
    """A source on the fixture's broker with a stable client id; `fields` are the rest."""
    broker = {
        "host": mosquitto.host,
        "port": mosquitto.port,
        "protocol": protocol,
        "client_id": "taktline-test-collector",
    } | fields.pop("broker", {})
    return MqttSource.model_validate({"type": "mqtt", "id": "src", "broker": broker} | fields)


@asynccontextmanager
async def running(source: MqttSource) -> AsyncIterator[MqttCollector]:
    """The collector, connected and subscribed."""
    async with MqttCollector(source, backoff=Backoff(0.1, 1.0)) as collector:
        await wait_for(lambda: collector.health.connected, "collector subscribed")
        yield collector


async def take(
    collector: MqttCollector, count: int, *, ack: bool = True, timeout_s: float = 15.0
) -> list[Reading]:
    """The next `count` readings; acknowledged like the edge does after a commit."""
    got = await collect_until(
        collector.readings(), lambda seen: len(seen) >= count, timeout_s=timeout_s
    )
    if ack:
        collector.acknowledge([r.receipt for r in got if r.receipt is not None])
    return got


@asynccontextmanager
async def device(
    mosquitto: MosquittoService, identifier: str = "test-device"
) -> AsyncIterator[aiomqtt.Client]:
    """A publishing device."""
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier=identifier) as client:
        yield client
