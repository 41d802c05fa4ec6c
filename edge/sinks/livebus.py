"""Live-bus sink: each update retained at QoS 1 on its counter topic, plus the edge's status.

A connection task keeps one MQTT client connected (reconnecting with capped backoff, logging once
on failure and once on recovery). On connect it publishes the edge status `online`, retained,
and refreshes it every STATUS_EVERY_S;
the client's last will publishes `offline` when the connection dies, and a clean stop publishes
`offline` itself. `send` keeps up to PUBLISH_WINDOW publishes in flight, in batch order, and
returns once the broker acknowledged every message: the cursor only advances past what the
broker holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Literal, Self

import aiomqtt

from edge.sinks.base import SinkHealth
from edge.sinks.errors import SinkUnavailableError
from edge.sinks.forwarder import DEFAULT_BACKOFF, Backoff
from taktline.livebus import CounterMessage, EdgeStatus, counter_topic, edge_status_topic
from taktline.model.connections import MqttConnection
from taktline.mqttclient import mqtt_client
from taktline.records import CounterUpdate

log = logging.getLogger(__name__)

STATUS_EVERY_S = 10.0
"""The retained `online` status is refreshed this often: a sign of life for the server while a
line makes no units (well under the server's default 30 s staleness)."""

PUBLISH_WINDOW = 10
"""QoS 1 publishes awaiting their PUBACK at a time (aiomqtt warns above 10 pending calls)."""


class LiveBusSink:
    """Publishes counter updates and the edge status to the live-bus broker."""

    name = "live_bus"

    def __init__(
        self,
        connection: MqttConnection,
        edge_id: str,
        lines: Sequence[str],
        backoff: Backoff = DEFAULT_BACKOFF,
        batch_size: int = 500,
    ) -> None:
        self.connection = connection
        self.edge_id = edge_id
        self.lines = list(lines)
        self.backoff = backoff
        self.batch_size = batch_size
        self.health = SinkHealth(self.name)
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._keep_connected(), name="live-bus connection")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client = self._client
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                async with asyncio.timeout(5):
                    await self._publish_status(client, "offline")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def ready(self) -> None:
        """Raise SinkUnavailableError while the broker is not connected."""
        if self._client is None:
            raise SinkUnavailableError(self.health.last_error or "live bus not connected yet")

    async def send(self, updates: Sequence[CounterUpdate]) -> None:
        """Publish every update retained at QoS 1; return once the broker acknowledged all."""
        client = self._client
        if client is None:
            raise SinkUnavailableError("live bus not connected")
        window = asyncio.Semaphore(PUBLISH_WINDOW)  # FIFO: publishes leave in batch order

        async def publish(update: CounterUpdate) -> None:
            async with window:
                await client.publish(
                    counter_topic(update.counter),
                    CounterMessage.from_update(update).model_dump_json(),
                    qos=1,
                    retain=True,
                )

        publishing = [asyncio.ensure_future(publish(update)) for update in updates]
        try:
            await asyncio.gather(*publishing)
        except aiomqtt.MqttError as exc:
            for future in publishing:
                future.cancel()
            raise SinkUnavailableError(f"live bus publish failed: {exc}") from exc

    def status(self, state: Literal["online", "offline"]) -> str:
        """The JSON body of the edge status topic."""
        body = EdgeStatus(
            edge_id=self.edge_id, state=state, lines=self.lines, ts=dt.datetime.now(dt.UTC)
        )
        return body.model_dump_json()

    async def _publish_status(
        self, client: aiomqtt.Client, state: Literal["online", "offline"]
    ) -> None:
        await client.publish(
            edge_status_topic(self.edge_id), self.status(state), qos=1, retain=True
        )

    @staticmethod
    async def _until_link_drops(client: aiomqtt.Client) -> None:
        async for _ in client.messages:  # ends with MqttError when the link drops
            pass

    async def _refresh_status(self, client: aiomqtt.Client) -> None:
        while True:
            await asyncio.sleep(STATUS_EVERY_S)
            await self._publish_status(client, "online")

    async def _keep_connected(self) -> None:
        delay = self.backoff.initial_s
        failing = False
        where = f"{self.connection.host}:{self.connection.port}"
        while True:
            will = aiomqtt.Will(
                edge_status_topic(self.edge_id), self.status("offline"), qos=1, retain=True
            )
            identifier = self.connection.client_id or f"taktline-edge-{self.edge_id}"
            try:
                async with mqtt_client(self.connection, identifier=identifier, will=will) as client:
                    await self._publish_status(client, "online")
                    self._client = client
                    self.health.connected = True
                    delay = self.backoff.initial_s
                    if failing:
                        log.info("live bus: connected again to %s", where)
                        failing = False
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._until_link_drops(client))
                        group.create_task(self._refresh_status(client))
            except* aiomqtt.MqttError as errors:
                exc = errors.exceptions[0]
                self.health.last_error = f"{where}: {exc}"
                if not failing:
                    log.warning("live bus: %s; reconnecting with backoff", self.health.last_error)
                    failing = True
            finally:
                self._client = None
                self.health.connected = False
            await asyncio.sleep(delay)
            delay = self.backoff.next(delay)
