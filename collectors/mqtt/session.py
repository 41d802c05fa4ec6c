"""One MQTT session on an asyncio transport with taktline's own codec, handing messages over in
batches.

    socket -> SubscriberConnection.data_received: every PUBLISH of one read decoded at once
    -> pending list (bounded: `max_pending` plus at most one read; policy BLOCK: a full list
       pauses reading the socket, so TCP back-pressure reaches the broker; nothing is dropped)
    -> one wake-up of the consumer per read (not one per message)
    -> `next_batch()` takes the whole list at once, and reading resumes.

QoS 1 messages are acknowledged only by `ack(receipts)`, so the broker holds at most
`receive_maximum` (MQTT 5 Receive Maximum; `max_inflight_messages` of the broker on 3.1.1)
unacknowledged messages for us: that, not memory, is what bounds a slow consumer at QoS 1. The
session connects with a stable client id and a persistent session (clean session false on
3.1.1; clean start false and a Session Expiry Interval on 5), subscribes to every filter on
every connect, pings, gives up on a silent broker and reconnects with capped exponential backoff
with jitter, one connection at a time. A receipt names its connection: receipts of an earlier
connection are not acknowledged (the broker sends those messages again on the new one).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from collectors.base import SourceHealth
from collectors.mqtt.connection import SubscriberConnection, open_subscriber
from collectors.support import Backoff, OutageLog
from taktline.model.connections import MqttConnection
from taktline.model.secrets import SecretError
from taktline.mqttwire import Message, MqttProtocolError, puback_packet, suback_reason

log = logging.getLogger(__name__)

Pending = Message | int
"""A received message, or (an int) the connection number of the messages that follow."""
_MID_BITS = 16
_MID_MASK = (1 << _MID_BITS) - 1
_CONNECT_TIMEOUT_S = 15.0
"""For TCP + TLS + CONNACK, and again for SUBACK."""
_CLOSE_TIMEOUT_S = 1.0
_REFUSED = 0x80


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
        self._pending: list[Pending] = []
        self._marked = 0
        """The connection number last put into `_pending`."""
        self._ready = asyncio.Event()
        self._current: SubscriberConnection | None = None
        self._paused: SubscriberConnection | None = None
        self._generation = 0
        self._sessions = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> MqttSession:
        self._task = asyncio.create_task(self._keep_connected(), name="mqtt-session")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])

    async def next_batch(self) -> list[Pending]:
        """Everything received since the last call (waits for at least one item)."""
        while not self._pending:
            self._ready.clear()
            await self._ready.wait()
        batch, self._pending = self._pending, []
        if self._paused is not None:
            self._paused.resume()
            self._paused = None
        return batch

    def receipt(self, generation: int, mid: int) -> int:
        """The receipt of QoS 1 message `mid` received on connection `generation`."""
        return generation << _MID_BITS | mid

    def ack(self, receipts: Sequence[int]) -> None:
        """Acknowledge QoS 1 messages (in order, in one write); receipts of older connections
        are skipped."""
        current = self._current
        if current is None or not receipts:
            return
        generation = current.generation
        packets = [puback_packet(r & _MID_MASK) for r in receipts if r >> _MID_BITS == generation]
        if packets:
            current.write(b"".join(packets))

    def publish(self, topic: str, payload: bytes) -> None:
        """Send one QoS 0 message now if connected (a Sparkplug rebirth request)."""
        if self._current is not None:
            self._current.publish(topic, payload)

    def _deliver(self, connection: SubscriberConnection, messages: list[Message]) -> None:
        """A read's messages: queue them, wake the consumer, pause reading when full."""
        pending = self._pending
        if connection.generation != self._marked:
            pending.append(connection.generation)
            self._marked = connection.generation
        pending += messages
        self._ready.set()
        if len(pending) >= self._max_pending:
            connection.pause()
            self._paused = connection

    async def _keep_connected(self) -> None:
        try:
            while True:
                await self._session()
                await asyncio.sleep(self._backoff.next_delay())
        finally:
            self.health.connected = False

    async def _session(self) -> None:
        """One connection: connect, subscribe, run until it is lost. The failure is recorded in
        health before the connection is taken down, so no one sees it disconnected without
        a reason."""
        self._generation += 1
        connection = SubscriberConnection(
            self._connection.protocol, self._generation, self._deliver
        )
        self._current = connection
        try:
            connack = await open_subscriber(
                connection,
                self._connection,
                self._client_id,
                receive_maximum=self._receive_maximum,
                timeout_s=_CONNECT_TIMEOUT_S,
            )
            async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                granted = await connection.subscribe(self._subscriptions)
            for (topic, _), code in zip(self._subscriptions, granted, strict=False):
                if code >= _REFUSED:
                    log.error(
                        "source %s: the broker refused the subscription to %s: %s",
                        self.health.source_id,
                        topic,
                        suback_reason(code),
                    )
            if self._sessions:
                self.health.reconnects += 1
            self._sessions += 1
            self._backoff.reset()
            self._outage.connected()
            log.debug(
                "source %s: connected (session present: %s)",
                self.health.source_id,
                connack.session_present,
            )
            self._outage.failed(f"connection lost: {await connection.closed}")
        except (OSError, SecretError, MqttProtocolError) as exc:
            self._outage.failed(f"{type(exc).__name__}: {exc}")
        finally:
            self.health.connected = False
            self._current = None
            if self._paused is connection:
                self._paused = None
            if connection.opened:  # a goodbye, so that the PUBACKs written reach the broker
                connection.disconnect()
                await asyncio.wait([connection.closed], timeout=_CLOSE_TIMEOUT_S)
