"""Live-bus sink: each counter's newest update retained at QoS 1 on its topic, plus edge status.

Threads: paho-mqtt runs its own network thread (`loop_start`): socket I/O, keepalive, and
reconnecting with capped exponential backoff (`reconnect_delay_set`). Its callbacks only hand
events to the event loop (`call_soon_threadsafe`); publishing is paho's thread-safe `publish`.

A batch (see edge.sinks.livebus_messages): only the newest update of each counter is published,
with `delta` = the sum of that counter's deltas in the batch. All of its messages are published
at once, then `send` waits once for a future that the paho thread resolves when the broker has
acknowledged every one (PUBACK). A disconnect, a refused PUBACK or no acknowledgement within
ACK_TIMEOUT_S raises SinkUnavailableError: the cursor holds and the batch is sent again (QoS 1
is at least once; a counter topic is retained state, so a repeat changes nothing).

In flight: at most one window of a batch (WINDOW - 1 publishes, fewer when an MQTT 5 broker
announces a smaller Receive Maximum; a larger batch is sent window by window) and the status.
paho's own in-flight limit is off (0): with a limit paho scans every message it holds on each
PUBACK, a cost that grows with the window, while the window already bounds what is in flight.
paho's queue of unacknowledged messages is bounded by MAX_QUEUED (policy: refuse; the publish
fails and the batch stays in the outbox).

Status: on every connect the sink publishes the edge status `online`, retained, and refreshes it
every STATUS_EVERY_S; the last will publishes `offline` when the connection dies, and a clean stop
publishes `offline` itself. It logs once when the broker fails and once when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Literal, Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.sinks.base import SinkHealth
from edge.sinks.errors import SinkUnavailableError
from edge.sinks.forwarder import DEFAULT_BACKOFF, Backoff
from edge.sinks.livebus_messages import Topics, coalesce, counter_body
from taktline.livebus import EdgeStatus, edge_status_topic
from taktline.model.connections import MqttConnection
from taktline.mqttclient import tls_context
from taktline.records import CounterUpdate

log = logging.getLogger(__name__)

STATUS_EVERY_S = 10.0
"""The retained `online` status is refreshed this often: a sign of life for the server while a
line makes no units (well under the server's default 30 s staleness)."""

WINDOW = 1000
"""Most QoS 1 publishes awaiting their PUBACK: a batch's window plus one slot for the status.
An MQTT 5 broker's smaller Receive Maximum lowers it."""

BATCH_SIZE = WINDOW - 1
"""Outbox rows per batch: a batch fits one window, so it costs one round trip to the broker
(500 rows a batch made the live bus fall behind at 10,000 counters: one outbox read, PUBACK
round trip and cursor commit per 500 rows)."""

MAX_QUEUED = 10_000
"""Most messages paho holds unacknowledged (a window, the status, a failed window's leftovers)."""

ACK_TIMEOUT_S = 30.0
"""A window not acknowledged within this time is sent again."""

STOP_TIMEOUT_S = 5.0
"""How long a clean stop waits for the broker to acknowledge the `offline` status."""


def live_bus_client(connection: MqttConnection, client_id: str, backoff: Backoff) -> paho.Client:
    """A paho client for the live bus (unconnected): clean session, paho's own reconnect with
    `backoff` (whole seconds, at least one), no paho in-flight limit. Raises SecretError when
    the password's secret is missing."""
    v5 = connection.protocol == "5"
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=None if v5 else True,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
    )
    if connection.username is not None:
        password = connection.password.reveal() if connection.password else None
        client.username_pw_set(connection.username, password)
    if connection.tls is not None:
        client.tls_set_context(tls_context(connection.tls))
    client.reconnect_delay_set(max(1, math.ceil(backoff.initial_s)), math.ceil(backoff.max_s))
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(MAX_QUEUED)
    return client


class _Acks:
    """The PUBACKs one window waits for; used under the sink's lock by both threads."""

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done
        self.pending: set[int] | None = None  # None until every message is published
        self.early: dict[int, str | None] = {}  # acknowledged before `seal`
        self.refused: str | None = None

    def seal(self, mids: list[int]) -> bool:
        """Every message is published; True when all are acknowledged already."""
        pending = set(mids)
        for mid, refused in self.early.items():
            if mid in pending:
                pending.discard(mid)
                self.refused = self.refused or refused
        self.pending, self.early = pending, {}
        return not pending

    def ack(self, mid: int, refused: str | None) -> bool:
        """Record a PUBACK; True when it completes the window."""
        if self.pending is None:
            self.early[mid] = refused
            return False
        if mid not in self.pending:
            return False  # the status, or a message paho sent again from an earlier window
        self.pending.discard(mid)
        self.refused = self.refused or refused
        return not self.pending


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class LiveBusSink:
    """Publishes counter updates and the edge status to the live-bus broker."""

    name = "live_bus"

    def __init__(
        self,
        connection: MqttConnection,
        edge_id: str,
        lines: Sequence[str],
        backoff: Backoff = DEFAULT_BACKOFF,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.connection = connection
        self.edge_id = edge_id
        self.lines = list(lines)
        self.backoff = backoff
        self.batch_size = batch_size
        self.health = SinkHealth(self.name)
        self._where = f"{connection.host}:{connection.port}"
        self._status_topic = edge_status_topic(edge_id)
        self._topics = Topics()
        self._lock = threading.Lock()
        self._acks: _Acks | None = None
        self._sending = asyncio.Lock()
        self._window = WINDOW - 1
        self._failing = False
        self._stopping = False
        self._client: paho.Client | None = None
        self._refresh: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        client_id = self.connection.client_id or f"taktline-edge-{self.edge_id}"
        client = live_bus_client(self.connection, client_id, self.backoff)
        client.will_set(self._status_topic, self.status("offline"), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.connect_async(
            self.connection.host, self.connection.port, self.connection.keepalive_s
        )
        client.loop_start()
        self._client = client
        self._refresh = asyncio.create_task(self._refresh_status(), name="live-bus status")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh
        client = self._client
        if client is None:
            return
        if self.health.connected:
            with contextlib.suppress(SinkUnavailableError):
                await self._publish([(self._status_topic, self.status("offline"))], STOP_TIMEOUT_S)
        self._stopping = True
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        self._client = None
        self.health.connected = False

    @property
    def window(self) -> int:
        """Most publishes of a batch in flight on the current connection."""
        return self._window

    @property
    def in_flight(self) -> int:
        """Publishes of the batch being sent that wait for their PUBACK."""
        with self._lock:
            pending = self._acks.pending if self._acks is not None else None
            return len(pending) if pending is not None else 0

    async def ready(self) -> None:
        """Raise SinkUnavailableError while the broker is not connected."""
        if not self.health.connected:
            raise SinkUnavailableError(self.health.last_error or "live bus not connected yet")

    async def send(self, updates: Sequence[CounterUpdate]) -> None:
        """Publish each counter's newest update retained at QoS 1; return once the broker
        acknowledged all of them."""
        topic = self._topics
        messages = [
            (topic(c.update.counter), counter_body(c.update, c.delta)) for c in coalesce(updates)
        ]
        await self._publish(messages, ACK_TIMEOUT_S)

    def status(self, state: Literal["online", "offline"]) -> str:
        """The JSON body of the edge status topic."""
        body = EdgeStatus(
            edge_id=self.edge_id, state=state, lines=self.lines, ts=dt.datetime.now(dt.UTC)
        )
        return body.model_dump_json()

    async def _publish(self, messages: list[tuple[str, str]], timeout: float) -> None:  # noqa: ASYNC109
        async with self._sending:
            start = 0
            while start < len(messages):
                window = self._window
                await self._publish_window(messages[start : start + window], timeout)
                start += window

    async def _publish_window(self, messages: list[tuple[str, str]], timeout: float) -> None:  # noqa: ASYNC109
        client = self._client
        if client is None or not self.health.connected:
            raise SinkUnavailableError(f"live bus {self._where} not connected")
        acks = _Acks(self._loop.create_future())
        with self._lock:
            self._acks = acks
        try:
            mids: list[int] = []
            for topic, body in messages:
                info = client.publish(topic, body, qos=1, retain=True)
                if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    raise SinkUnavailableError(
                        f"live bus publish failed: {paho.error_string(info.rc)}"
                    )
                mids.append(info.mid)
            with self._lock:
                complete = acks.seal(mids)
            if complete:
                _settle(acks.done, None)
            async with asyncio.timeout(timeout):
                await acks.done
        except TimeoutError:
            raise SinkUnavailableError(
                f"live bus {self._where}: no PUBACK within {timeout:g} s"
            ) from None
        finally:
            with self._lock:
                self._acks = None
        if acks.refused is not None:
            raise SinkUnavailableError(f"live bus {self._where} refused a publish: {acks.refused}")

    def _publish_status(self, state: Literal["online", "offline"]) -> None:
        if self._client is not None:
            self._client.publish(self._status_topic, self.status(state), qos=1, retain=True)

    async def _refresh_status(self) -> None:
        while True:
            await asyncio.sleep(STATUS_EVERY_S)
            if self.health.connected:
                self._publish_status("online")

    # paho's network thread: hand everything to the event loop.

    def _on_connect(
        self, _c: paho.Client, _u: object, _f: Any, code: ReasonCode, properties: Any
    ) -> None:
        receive_maximum = getattr(properties, "ReceiveMaximum", None)
        self._loop.call_soon_threadsafe(self._connected, code, receive_maximum)

    def _on_connect_fail(self, _c: paho.Client, _u: object) -> None:
        self._loop.call_soon_threadsafe(self._failed, "cannot connect")

    def _on_disconnect(
        self, client: paho.Client, _u: object, _f: Any, code: ReasonCode, _p: Properties | None
    ) -> None:
        # the will paho sends with the next CONNECT carries a fresh timestamp
        client.will_set(self._status_topic, self.status("offline"), qos=1, retain=True)
        self._loop.call_soon_threadsafe(self._lost, str(code))

    def _on_publish(
        self, _c: paho.Client, _u: object, mid: int, code: ReasonCode, _p: Properties
    ) -> None:
        with self._lock:
            acks = self._acks
            if acks is None:
                return
            complete = acks.ack(mid, str(code) if code.is_failure else None)
        if complete:
            self._loop.call_soon_threadsafe(_settle, acks.done, None)

    # The event loop: connection state, health, logging.

    def _connected(self, code: ReasonCode, receive_maximum: int | None) -> None:
        if code.is_failure:
            self._failed(f"connection refused: {code}")
            return
        # one slot of the broker's Receive Maximum (MQTT 5) kept for the status
        self._window = max(1, min(WINDOW, receive_maximum or WINDOW) - 1)
        self._publish_status("online")
        self.health.connected = True
        if self._failing:
            log.info("live bus: connected again to %s", self._where)
            self._failing = False

    def _lost(self, reason: str) -> None:
        self.health.connected = False
        with self._lock:
            acks = self._acks
        if acks is not None:
            _settle(acks.done, SinkUnavailableError(f"live bus {self._where} lost: {reason}"))
        if not self._stopping:
            self._failed(f"connection lost: {reason}")

    def _failed(self, reason: str) -> None:
        self.health.last_error = f"{self._where}: {reason}"
        if not self._failing:
            log.warning("live bus: %s; reconnecting with backoff", self.health.last_error)
            self._failing = True
