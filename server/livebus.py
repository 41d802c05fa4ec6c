"""The server's live-bus listener: subscribe, hand every message on, reconnect with backoff.

Subscriptions (counters, edge status, edge health) are made on every connect, so the broker
replays the retained counter, edge status and edge health messages and the line state is rebuilt
after a server or broker restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiomqtt
from aiomqtt.types import PayloadType

from taktline.livebus import (
    COUNTER_SUBSCRIPTION,
    EDGE_HEALTH_SUBSCRIPTION,
    EDGE_STATUS_SUBSCRIPTION,
)
from taktline.model.connections import MqttConnection
from taktline.mqttclient import mqtt_client

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]


class LiveBusListener:
    """Feeds `on_message(topic, payload)` from the live bus until cancelled."""

    def __init__(
        self,
        connection: MqttConnection,
        on_message: MessageHandler,
        *,
        min_backoff_s: float = 0.5,
        max_backoff_s: float = 15.0,
    ):
        self._connection = connection
        self._on_message = on_message
        self._min_backoff_s = min_backoff_s
        self._max_backoff_s = max_backoff_s
        self.connected = asyncio.Event()
        self.connects = 0
        self.messages = 0

    @property
    def where(self) -> str:
        """host:port of the broker (for logs and health)."""
        return f"{self._connection.host}:{self._connection.port}"

    async def run(self) -> None:
        """Connect, subscribe, dispatch; on a broker error wait and try again, forever."""
        backoff = self._min_backoff_s
        failing = False
        while True:
            try:
                async with mqtt_client(self._connection) as client:
                    await client.subscribe(COUNTER_SUBSCRIPTION, qos=1)
                    await client.subscribe(EDGE_STATUS_SUBSCRIPTION, qos=1)
                    await client.subscribe(EDGE_HEALTH_SUBSCRIPTION, qos=1)
                    self.connects += 1
                    self.connected.set()
                    backoff = self._min_backoff_s
                    if failing:
                        log.info("live bus %s: connected again", self.where)
                        failing = False
                    else:
                        log.info("live bus %s: connected", self.where)
                    async for message in client.messages:
                        self.messages += 1
                        self._on_message(message.topic.value, _payload_bytes(message.payload))
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                if not failing:
                    log.warning("live bus %s: %s; retrying with backoff", self.where, exc)
                    failing = True
            self.connected.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff_s)


def _payload_bytes(payload: PayloadType) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()
