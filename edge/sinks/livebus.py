"""Live-bus sink: each counter's newest update retained at QoS 1 on its topic, plus edge status.

The MQTT client is our own (edge.sinks.livebus_connection on taktline.mqttwire): the sink only
publishes, and paho-mqtt's per-message cost (40-55 µs of CPU per QoS 1 publish and PUBACK) made
the live bus the largest cost of an edge at 10,000 updates/s. Everything runs on the event loop.

A batch (see edge.sinks.livebus_messages): only the newest update of each counter is published,
with `delta` = the sum of that counter's deltas in the batch. A window of the batch is written at
once, then `send` waits for the broker's PUBACK of every message of it. A disconnect, a refused
PUBACK or no acknowledgement within ACK_TIMEOUT_S raises SinkUnavailableError: the cursor holds
and the batch is sent again (QoS 1 is at least once; a counter topic is retained state, so a
repeat changes nothing).

Rate limit: batches start at least 1/`max_rate_hz` apart (default MAX_RATE_HZ, 10/s), so no
counter topic gets more messages than that; meanwhile the rows wait in the outbox and the next
batch coalesces them.

In flight: at most one window of a batch (WINDOW - 1 publishes, fewer when an MQTT 5 broker
announces a smaller Receive Maximum; a larger batch is sent window by window) and the status.
The edge's health message (`publish_health`, retained, QoS 1) takes its turn between windows,
as a window of its own, so it never adds to what is in flight.

Connection: clean session; reconnects after a loss with capped exponential backoff and jitter
(half to all of the delay), one connection at a time; keepalive pings, and a broker silent for
1.5 keepalives counts as lost. On every connect the sink publishes the edge status `online`,
retained, and refreshes it every STATUS_EVERY_S; the last will (re-made with a fresh timestamp
for every connection) publishes `offline` when the connection dies, and a clean stop publishes
`offline` itself. It logs once when the broker fails and once when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Literal, Self

from edge.sinks.base import SinkHealth
from edge.sinks.errors import SinkUnavailableError
from edge.sinks.forwarder import DEFAULT_BACKOFF, Backoff, jittered
from edge.sinks.livebus_connection import BrokerConnection, open_broker
from edge.sinks.livebus_messages import Stamps, Topics, coalesce, counter_body
from taktline.livebus import EdgeStatus, edge_health_topic, edge_status_topic
from taktline.model.connections import MqttConnection
from taktline.mqttwire import Will, binary
from taktline.records import CounterUpdate

log = logging.getLogger(__name__)

STATUS_EVERY_S = 10.0
"""The retained `online` status is refreshed this often: a sign of life for the server while a
line makes no units (well under the server's default 30 s staleness)."""

WINDOW = 1000
"""Most QoS 1 publishes awaiting their PUBACK: a batch's window plus one slot for the status.
An MQTT 5 broker's smaller Receive Maximum lowers it."""

BATCH_SIZE = 20_000
"""Most outbox rows per batch. Coalesced to one message per counter, a batch is sent window by
window; a large batch lets a fast counter's many rows become one message."""

MAX_RATE_HZ = 10.0
"""Most messages per second on one counter topic (batches start at least 1/MAX_RATE_HZ apart):
screens stay fresh, and a counter at 100 units/s does not flood the broker and the server."""

ACK_TIMEOUT_S = 30.0
"""A window not acknowledged within this time is sent again."""

CONNECT_TIMEOUT_S = 10.0
"""Most time for TCP, TLS, CONNECT and CONNACK."""

STOP_TIMEOUT_S = 5.0
"""How long a clean stop waits for the broker to acknowledge the `offline` status."""


class LiveBusSink:
    """Publishes counter updates and the edge status to the live-bus broker."""

    name = "live_bus"
    flush_interval_s = 0.0

    def __init__(
        self,
        connection: MqttConnection,
        edge_id: str,
        lines: Sequence[str],
        backoff: Backoff = DEFAULT_BACKOFF,
        batch_size: int = BATCH_SIZE,
        max_rate_hz: float = MAX_RATE_HZ,
    ) -> None:
        self.connection = connection
        self.edge_id = edge_id
        self.lines = list(lines)
        self.backoff = backoff
        self.batch_size = batch_size
        self._min_interval_s = 1.0 / max_rate_hz
        self.health = SinkHealth(self.name)
        self._where = f"{connection.host}:{connection.port}"
        self._client_id = connection.client_id or f"taktline-edge-{edge_id}"
        self._status_topic = edge_status_topic(edge_id)
        self._status_topic_field = binary(self._status_topic.encode())
        self._health_topic_field = binary(edge_health_topic(edge_id).encode())
        self._topics = Topics()
        self._stamps = Stamps()
        self._sending = asyncio.Lock()
        self._window = WINDOW - 1
        self._failing = False
        self._stopping = False
        self._password: str | None = None
        self._broker: BrokerConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Self:
        password = self.connection.password
        self._password = password.reveal() if password is not None else None  # SecretError
        self._tasks = [
            asyncio.create_task(self._maintain(), name="live-bus connection"),
            asyncio.create_task(self._refresh_status(), name="live-bus status"),
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        broker = self._broker
        if broker is None:
            return
        if self.health.connected:
            with contextlib.suppress(SinkUnavailableError):
                await self._publish(
                    [(self._status_topic_field, self._status("offline"))], STOP_TIMEOUT_S
                )
        broker.disconnect()
        self._broker = None
        self.health.connected = False

    @property
    def window(self) -> int:
        """Most publishes of a batch in flight on the current connection."""
        return self._window

    @property
    def in_flight(self) -> int:
        """Publishes sent and not acknowledged yet."""
        return self._broker.in_flight if self._broker is not None else 0

    async def ready(self) -> None:
        """Raise SinkUnavailableError while the broker is not connected."""
        if not self.health.connected:
            raise SinkUnavailableError(self.health.last_error or "live bus not connected yet")

    async def send(self, updates: Sequence[CounterUpdate]) -> None:
        """Publish each counter's newest update retained at QoS 1; return once the broker
        acknowledged all of them."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        topic, stamps = self._topics, self._stamps
        messages = [
            (topic(update.counter), counter_body(update, delta, stamps).encode())
            for update, delta in coalesce(updates)
        ]
        await self._publish(messages, ACK_TIMEOUT_S)
        # the rate limit: hold the next batch back (its rows gather in the outbox meanwhile)
        pause = started + self._min_interval_s - loop.time()
        if pause > 0:
            await asyncio.sleep(pause)

    async def publish_health(self, body: bytes) -> None:
        """Publish the edge's health message retained at QoS 1 on its health topic; return once
        the broker acknowledged it. Raises SinkUnavailableError while the broker is not
        connected or does not acknowledge it."""
        await self._publish([(self._health_topic_field, body)], ACK_TIMEOUT_S)

    def status(self, state: Literal["online", "offline"]) -> str:
        """The JSON body of the edge status topic."""
        body = EdgeStatus(
            edge_id=self.edge_id, state=state, lines=self.lines, ts=dt.datetime.now(dt.UTC)
        )
        return body.model_dump_json()

    def _status(self, state: Literal["online", "offline"]) -> bytes:
        return self.status(state).encode()

    async def _publish(self, messages: list[tuple[bytes, bytes]], timeout: float) -> None:  # noqa: ASYNC109
        async with self._sending:
            start = 0
            while start < len(messages):
                window = self._window
                await self._publish_window(messages[start : start + window], timeout)
                start += window

    async def _publish_window(self, messages: list[tuple[bytes, bytes]], timeout: float) -> None:  # noqa: ASYNC109
        broker = self._broker
        if broker is None or not self.health.connected:
            raise SinkUnavailableError(f"live bus {self._where} not connected")
        acknowledged = broker.publish(messages, retain=True)
        try:
            async with asyncio.timeout(timeout):
                refused = await acknowledged
        except TimeoutError:
            raise SinkUnavailableError(
                f"live bus {self._where}: no PUBACK within {timeout:g} s"
            ) from None
        if refused is not None:
            raise SinkUnavailableError(f"live bus {self._where} refused a publish: {refused}")

    async def _maintain(self) -> None:
        """Connect, stay connected, reconnect with capped backoff and jitter; until cancelled."""
        delay = self.backoff.initial_s
        while True:
            try:
                broker = await open_broker(
                    self.connection,
                    self._client_id,
                    Will(self._status_topic, self._status("offline")),
                    self._password,
                    CONNECT_TIMEOUT_S,
                )
            except OSError as exc:  # TimeoutError, ConnectionError, BrokerRefusedError
                self._failed(f"cannot connect: {exc or type(exc).__name__}")
                await asyncio.sleep(jittered(delay))
                delay = self.backoff.next(delay)
                continue
            delay = self.backoff.initial_s
            self._connected(broker)
            try:
                reason = await asyncio.shield(broker.closed)
            except asyncio.CancelledError:
                if not self._stopping:
                    broker.abort("cancelled")
                raise
            self.health.connected = False
            self._broker = None
            self._failed(reason)

    def _connected(self, broker: BrokerConnection) -> None:
        # one slot of the broker's Receive Maximum (MQTT 5) kept for the status
        self._window = max(1, min(WINDOW, broker.receive_maximum or WINDOW) - 1)
        self._broker = broker
        self._publish_status("online")
        self.health.connected = True
        if self._failing:
            log.info("live bus: connected again to %s", self._where)
            self._failing = False

    def _publish_status(self, state: Literal["online", "offline"]) -> None:
        if self._broker is not None:
            sent = self._broker.publish(
                [(self._status_topic_field, self._status(state))], retain=True
            )
            sent.add_done_callback(_outcome_seen)  # a lost status is sent again on reconnect

    async def _refresh_status(self) -> None:
        while True:
            await asyncio.sleep(STATUS_EVERY_S)
            if self.health.connected:
                self._publish_status("online")

    def _failed(self, reason: str) -> None:
        self.health.last_error = f"{self._where}: {reason}"
        if not self._failing:
            log.warning("live bus: %s; reconnecting with backoff", self.health.last_error)
            self._failing = True


def _outcome_seen(future: asyncio.Future[str | None]) -> None:
    if not future.cancelled():
        future.exception()
