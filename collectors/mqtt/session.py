"""One MQTT session on paho-mqtt's own network thread, handing messages to asyncio in batches.

    paho thread: socket I/O, keepalive, on_message -> pending list
        (bounded: `max_pending`, policy BLOCK: a full list holds the paho thread, so it stops
        reading the socket and TCP back-pressure reaches the broker; nothing is dropped here)
    -> one `call_soon_threadsafe` when the list turns non-empty (not one per message)
    -> asyncio: `next_batch()` takes the whole list at once.

QoS 1 messages are acknowledged only by `ack(receipts)` (paho's manual acknowledgement), so
the broker holds at most `receive_maximum` (MQTT 5; `max_inflight_messages` of the broker on
3.1.1) unacknowledged messages for us: that, not memory, is what bounds a slow consumer at
QoS 1. The session connects with a stable client id and a persistent session, subscribes to
every filter on every connect, and reconnects with capped exponential backoff with jitter.
A receipt names its connection: receipts of an earlier connection are not acknowledged (the
broker sends those messages again on the new one).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from collectors.base import SourceHealth
from collectors.support import Backoff, OutageLog
from taktline.model.connections import MqttConnection
from taktline.model.secrets import SecretError
from taktline.mqttclient import paho_client

log = logging.getLogger(__name__)

Pending = paho.MQTTMessage | int
"""A received message, or (an int) the connection number of the messages that follow."""
_MID_BITS = 16
_CONNACK_TIMEOUT_S = 15.0
_PAUSE_SLICE_S = 0.5


class ConnectRefusedError(RuntimeError):
    """The broker refused the connection (CONNACK reason code)."""


class MqttSession:
    """`async with MqttSession(...) as session:` keeps a session up until left."""

    def __init__(
        self,
        connection: MqttConnection,
        *,
        client_id: str,
        subscriptions: Sequence[tuple[str, int]],
        health: SourceHealth,
        backoff: Backoff,
        receive_maximum: int,
        max_pending: int,
    ) -> None:
        self.health = health
        self._connection = connection
        self._client_id = client_id
        self._subscriptions = list(subscriptions)
        self._backoff = backoff
        self._receive_maximum = receive_maximum
        self._max_pending = max_pending
        self._outage = OutageLog(log, health)
        self._lock = threading.Condition()
        self._pending: list[Pending] = []
        self._closing = False
        self._signalled = False
        self._ready = asyncio.Event()
        self._client: paho.Client | None = None
        self._generation = 0
        self._sessions = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> MqttSession:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._keep_connected(), name="mqtt-session")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])

    async def next_batch(self) -> list[Pending]:
        """Everything received since the last call (waits for at least one item)."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            with self._lock:
                batch, self._pending = self._pending, []
                self._signalled = False
                self._lock.notify_all()
            if batch:
                return batch

    def receipt(self, generation: int, mid: int) -> int:
        """The receipt of QoS 1 message `mid` received on connection `generation`."""
        return generation << _MID_BITS | mid

    def ack(self, receipts: Sequence[int]) -> None:
        """Acknowledge QoS 1 messages (in order); receipts of older connections are skipped."""
        client, current = self._client, self._generation
        if client is None:
            return
        mask = (1 << _MID_BITS) - 1
        for receipt in receipts:
            if receipt >> _MID_BITS == current:
                client.ack(receipt & mask, 1)

    def publish(self, topic: str, payload: bytes) -> None:
        """Send one QoS 0 message now if connected (a Sparkplug rebirth request)."""
        if self._client is not None and self._client.is_connected():
            self._client.publish(topic, payload, qos=0)

    async def _keep_connected(self) -> None:
        try:
            while True:
                try:
                    await self._session()
                except (OSError, SecretError, ConnectRefusedError, TimeoutError) as exc:
                    self._outage.failed(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(self._backoff.next_delay())
        finally:
            self.health.connected = False
            with self._lock:
                self._closing = True
                self._lock.notify_all()

    async def _session(self) -> None:
        """One connection: connect, subscribe, run until it is lost; raises on failure."""
        built = paho_client(
            self._connection,
            identifier=self._client_id,
            receive_maximum=self._receive_maximum,
        )
        client = built.client
        connack: asyncio.Future[tuple[ReasonCode, bool]] = self._loop.create_future()
        suback: asyncio.Future[list[ReasonCode]] = self._loop.create_future()
        lost: asyncio.Future[str] = self._loop.create_future()
        generation = self._generation + 1

        def resolve(future: asyncio.Future[Any], value: object) -> None:
            if not future.done():
                future.set_result(value)

        def on_connect(_c: paho.Client, _u: object, flags: Any, rc: ReasonCode, _p: Any) -> None:
            with self._lock:
                self._pending.append(generation)  # messages after this are this connection's
            self._loop.call_soon_threadsafe(resolve, connack, (rc, flags.session_present))

        def on_subscribe(_c: paho.Client, _u: object, _m: int, codes: Any, _p: Any) -> None:
            self._loop.call_soon_threadsafe(resolve, suback, list(codes))

        def on_disconnect(_c: paho.Client, _u: object, _f: Any, rc: ReasonCode, _p: Any) -> None:
            self._loop.call_soon_threadsafe(resolve, lost, str(rc))

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_disconnect = on_disconnect
        client.on_message = self._on_message
        await asyncio.to_thread(
            client.connect,
            built.host,
            built.port,
            built.keepalive,
            clean_start=built.clean_start,
            properties=built.properties,
        )
        self._client, self._generation = client, generation
        client.loop_start()
        try:
            async with asyncio.timeout(_CONNACK_TIMEOUT_S):
                await asyncio.wait((connack, lost), return_when=asyncio.FIRST_COMPLETED)
                if not connack.done():  # e.g. TLS 1.3: a refused client certificate closes late
                    raise ConnectionError(f"connection closed before CONNACK: {lost.result()}")
                code, session_present = connack.result()
                if code.is_failure:
                    raise ConnectRefusedError(f"broker refused the connection: {code}")
                client.subscribe(self._subscriptions)
                granted = await suback
            for (topic, _), result in zip(self._subscriptions, granted, strict=False):
                if result.is_failure:
                    log.warning(
                        "source %s: broker refused %s: %s", self.health.source_id, topic, result
                    )
            if self._sessions:
                self.health.reconnects += 1
            self._sessions += 1
            self._backoff.reset()
            self._outage.connected()
            log.debug(
                "source %s: connected (session present: %s)", self.health.source_id, session_present
            )
            reason = await lost
            raise ConnectionError(f"connection lost: {reason}")
        finally:
            self.health.connected = False
            with self._lock:
                self._closing = True
                self._lock.notify_all()
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
            with self._lock:
                self._closing = False

    def _on_message(
        self, _client: paho.Client, _userdata: object, message: paho.MQTTMessage
    ) -> None:
        """paho thread: queue the message; wait while `max_pending` wait (BLOCK)."""
        with self._lock:
            while len(self._pending) >= self._max_pending and not self._closing:
                self._lock.wait(_PAUSE_SLICE_S)
            self._pending.append(message)
            wake, self._signalled = not self._signalled, True
        if wake:
            self._loop.call_soon_threadsafe(self._ready.set)
