"""The OPC UA collector: one session at a time, one subscription, every mapped node monitored.

Data path and overflow, from the server to the consumer:

    publish loop (asyncua) -> subscription queue (asyncua, bounded, DROP_OLDEST)
        -> receive task (here: DataValue -> Reading) -> ReadingStream (bounded, BLOCK)

asyncua's publish loop never waits for us. While the consumer is slow the ReadingStream is
full, the receive task waits (back-pressure), and once asyncua's subscription queue is full
too, asyncua drops the oldest notifications. For an absolute counter that loses only
intermediate values: the newest value still carries the count.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from asyncua.client.client import Client
from asyncua.common.subscription import (
    DataChangeEvent,
    OverflowPolicy,
    StatusChangeEvent,
    Subscription,
)
from asyncua.ua.uaerrors import UaError

from collectors.base import SourceHealth
from collectors.opcua.connection import build_client, check_security
from collectors.opcua.nodes import MappedNode, batch_size, item_queue_size, monitor, parse_nodes
from collectors.opcua.values import missing_reading, to_reading
from collectors.support import (
    BackgroundCollector,
    Backoff,
    OutageLog,
    ReadingStream,
    Throttle,
    utc_now,
)
from taktline.model.secrets import SecretError
from taktline.model.sources import OpcUaSource

log = logging.getLogger(__name__)


class SessionLostError(RuntimeError):
    """The connection dropped or the server ended the subscription."""


SESSION_ERRORS = (OSError, TimeoutError, UaError, SecretError, SessionLostError)
"""What ends a session and leads to a reconnect with backoff; anything else is a bug."""


class OpcUaCollector(BackgroundCollector):
    """Reads the mapped nodes of one OPC UA server as Readings (see the module docstring).

    On every connection loss (server stopped or restarted, BadSessionIdInvalid, watchdog
    probe failed) the session is closed and a new one is built after a capped, jittered
    backoff: never more than one session. Nodes the server does not know (yet) travel as BAD
    readings and are retried in the running session.
    """

    def __init__(
        self,
        source: OpcUaSource,
        *,
        pki_dir: Path | None = None,
        queue_size: int = 10_000,
        backoff: Backoff | None = None,
        request_timeout_s: float = 4.0,
        watchdog_interval_s: float = 1.0,
    ) -> None:
        check_security(source.security)
        self._pki_dir = pki_dir
        self.source_id = source.id
        self.health = SourceHealth(source.id)
        self._source = source
        self._nodes = parse_nodes(node.address for node in source.nodes)
        self._settings = source.settings_for(source.nodes[0])
        self._by_handle = {node.handle: node.address for node in self._nodes}
        self._queue_size = queue_size
        self._backoff = backoff or Backoff()
        self._timeout_s = request_timeout_s
        self._watchdog_s = watchdog_interval_s
        self._stream = ReadingStream(self.health, queue_size)
        self._outage = OutageLog(log, self.health)
        self._rejects = Throttle()
        self._missing: set[str] = set()
        self._lost: str | None = None
        self._sessions = 0

    async def _run(self) -> None:
        while True:
            try:
                await self._session()
            except SESSION_ERRORS as exc:
                self._outage.failed(_describe(exc))
            await asyncio.sleep(self._backoff.next_delay())

    async def _session(self) -> None:
        client = await build_client(
            self._source,
            pki_dir=self._pki_dir,
            timeout_s=self._timeout_s,
            watchdog_s=self._watchdog_s,
        )
        client.connection_lost_callback = self._on_connection_lost
        self._lost = None
        await client.connect()  # a failed connect cleans up after itself
        try:
            subscription = await client.create_subscription(
                self._settings.publishing_interval_ms,
                None,  # iterator mode: asyncua queues, we pull
                queue_maxsize=self._queue_size,
                overflow=OverflowPolicy.DROP_OLDEST,
            )
            batch = await batch_size(client)
            missing = await self._monitor(client, subscription, self._nodes, batch)
            if self._sessions:
                self.health.reconnects += 1
            self._sessions += 1
            self._backoff.reset()
            self._outage.connected()
            await self._receive(client, subscription, missing, batch)
        finally:
            await client.disconnect()  # closes the session; asyncua logs what it cannot close

    async def _on_connection_lost(self, exc: Exception) -> None:
        """asyncua's watchdog saw the transport drop or a health probe fail.

        asyncua then ends the subscription with BadShutdown, which ends `_receive`.
        """
        self.health.connected = False
        self._lost = f"connection lost ({_describe(exc)})"

    async def _monitor(
        self, client: Client, subscription: Subscription, nodes: list[MappedNode], batch: int
    ) -> list[MappedNode]:
        """Monitor `nodes`; report and return those the server refused."""
        failed = await monitor(
            client,
            subscription,
            nodes,
            sampling_ms=self._settings.sampling_interval_ms,
            queue=self._settings.queue_size
            or item_queue_size(
                self._settings.publishing_interval_ms, self._settings.sampling_interval_ms
            ),
            batch=batch,
        )
        for node in nodes:
            status = failed.get(node)
            if status is None:
                if node.address in self._missing:
                    self._missing.discard(node.address)
                    log.info("source %s: node %s is monitored again", self.source_id, node.address)
                continue
            if node.address not in self._missing:
                self._missing.add(node.address)
                log.warning(
                    "source %s: cannot monitor node %s: %s; retrying",
                    self.source_id,
                    node.address,
                    status.name,
                )
            await self._stream.put(missing_reading(self.source_id, node.address, utc_now()))
        return list(failed)

    async def _receive(
        self, client: Client, subscription: Subscription, missing: list[MappedNode], batch: int
    ) -> None:
        """Turn notifications into readings; retry refused nodes on a backoff of their own."""
        loop = asyncio.get_running_loop()
        retry = Backoff(self._backoff.base_s, self._backoff.cap_s)
        retry_at = loop.time() + retry.next_delay()
        while True:
            timeout = max(0.0, retry_at - loop.time()) if missing else None
            try:
                event = await subscription.next_event(timeout)
            except StopAsyncIteration:
                raise SessionLostError("subscription closed") from None
            if event is None:
                missing = await self._monitor(client, subscription, missing, batch)
                retry_at = loop.time() + retry.next_delay()
            elif isinstance(event, DataChangeEvent):
                await self._deliver(event)
            elif isinstance(event, StatusChangeEvent):
                status = event.notification.Status
                if not status.is_good():
                    raise SessionLostError(self._lost or f"subscription ended: {status.name}")

    async def _deliver(self, event: DataChangeEvent) -> None:
        item = event.data.monitored_item
        address = self._by_handle.get(item.ClientHandle)
        if address is None:  # not one of ours; asyncua routes by handle, so never expected
            return
        reading, rejected = to_reading(self.source_id, address, item.Value, utc_now())
        if rejected:
            self.health.rejected += 1
            if self._rejects.ready(address):
                log.warning(
                    "source %s: node %s holds no integer count (%r); reported as BAD",
                    self.source_id,
                    address,
                    item.Value.Value,
                )
        await self._stream.put(reading)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, SessionLostError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
