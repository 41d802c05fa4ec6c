"""The OPC UA collector: one session at a time; subscriptions per settings group, or polling.

Data path and overflow (subscribe mode), from the server to the consumer:

    publish loop (asyncua; responses read by wire.py) -> NodeGroup._on_publish
        -> Inbox (bounded, DROP_OLDEST)
        -> receive task (here: Change -> Reading, TAKE_MOST at a time)
        -> ReadingStream (bounded, BLOCK)

The publish loop never waits for us. While the consumer is slow the ReadingStream is full,
the receive task waits (back-pressure), and once the Inbox is full too its oldest
notifications are dropped. For an absolute counter that loses only intermediate values.

A reconnect first resumes the session (ActivateSession on a new channel, asyncua's
`session_state_path`), else transfers the subscriptions to a new session, and republishes the
messages the server still holds; only when the server lost them (restart) are the nodes
resolved and subscribed again (see README.md, "Connection").
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UaClientState
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import BadSubscriptionIdInvalid, UaError, UaStatusCodeError

from collectors.base import SourceHealth
from collectors.opcua.connection import build_client, check_security, configuration_error
from collectors.opcua.nodes import MappedNode, NodeError, batch_size, parse_nodes
from collectors.opcua.polling import Poller
from collectors.opcua.subscription import (
    Inbox,
    NodeGroup,
    Recovery,
    SubscriptionLostError,
)
from collectors.opcua.values import missing_reading, node_values
from collectors.opcua.wire import Change, change_of, install
from collectors.support import (
    BackgroundCollector,
    Backoff,
    OutageLog,
    ReadingStream,
    utc_now,
)
from taktline.model.secrets import SecretError
from taktline.model.sources import OpcUaSource, ResolvedSubscription
from taktline.records import Reading

log = logging.getLogger(__name__)

SESSION_ERRORS = (OSError, TimeoutError, UaError, SecretError, SubscriptionLostError)
"""What ends a session and leads to a reconnect with backoff; anything else is a bug."""

GONE = frozenset({StatusCodes.BadNodeIdUnknown, StatusCodes.BadNodeIdInvalid})
"""Item statuses saying the node no longer exists: its item is dropped and retried."""

TICK_S = 0.5
"""How often the receive task checks the watchdog and the retry of refused nodes."""

TAKE_MOST = 1000
"""Notifications the receive task converts at a time (one reception time, one stream put):
few enough that what it holds outside the Inbox stays small."""


class OpcUaCollector(BackgroundCollector):
    """Reads the mapped nodes of one OPC UA server as Readings (see the module docstring)."""

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
        self._nodes = parse_nodes(source.nodes)
        self._values = node_values(source, self._nodes)
        self._inbox = Inbox(queue_size)
        self._groups = [
            NodeGroup(settings, nodes, self._inbox)
            for settings, nodes in _grouped(source, self._nodes)
        ]
        self._group_of = {node.handle: group for group in self._groups for node in group.nodes}
        self._backoff = backoff or Backoff()
        self._timeout_s = request_timeout_s
        self._watchdog_s = watchdog_interval_s
        self._stream = ReadingStream(self.health, queue_size)
        self._outage = OutageLog(log, self.health)
        self._missing: set[str] = set()
        self._failed_chunks: set[int] = set()
        self._lost: str | None = None
        self._sessions = 0
        self._token: ua.NodeId | None = None
        self._session_file: Path | None = None

    async def _run(self) -> None:
        folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="taktline-opcua-"))
        self._session_file = folder / "session.json"
        try:
            while True:
                delay: float | None = None
                self._lost = None
                try:
                    if self._source.mode == "poll":
                        await self._polling_session()
                    else:
                        await self._subscription_session()
                except SESSION_ERRORS as exc:
                    hint = configuration_error(exc)
                    self._outage.failed(hint or self._lost or _describe(exc))
                    if hint is not None:  # retrying soon only hammers the server
                        delay = self._backoff.cap_s
                await asyncio.sleep(delay or self._backoff.next_delay())
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)

    async def _client(self) -> Client:
        client = await build_client(
            self._source,
            pki_dir=self._pki_dir,
            timeout_s=self._timeout_s,
            watchdog_s=self._watchdog_s,
        )
        client.connection_lost_callback = self._on_connection_lost
        return client

    async def _on_connection_lost(self, exc: Exception) -> None:
        """asyncua's supervisor saw the transport drop or its health probe fail.

        asyncua then ends every subscription with BadShutdown, which ends the session here.
        """
        self.health.connected = False
        self._lost = f"connection lost ({_describe(exc)})"

    def _connected(self) -> None:
        if self._sessions:
            self.health.reconnects += 1
        self._sessions += 1
        self._backoff.reset()
        self._outage.connected()

    # --- subscribe mode ---------------------------------------------------------------------

    async def _subscription_session(self) -> None:
        client = await self._client()
        # asyncua resumes the session named in this file (ActivateSession on the new channel)
        # when the server still holds it, and otherwise creates a new one.
        client.session_state_path = self._session_file
        self._inbox.reset()
        await client.connect()  # a failed connect cleans up after itself
        install(client.uaclient.session)
        try:
            token = client.uaclient.session.authentication_token
            resumed = self._token is not None and token == self._token
            self._token = token
            batch = await batch_size(client)
            await self._restore(client, resumed, batch)
            self._connected()
            await self._receive(client, batch)
        finally:
            await self._close(client)

    async def _restore(self, client: Client, resumed: bool, batch: int) -> None:
        """Take the subscriptions over (resumed or transferred) or create them afresh."""
        held = [group for group in self._groups if group.subscription_id is not None]
        transfers: dict[int, ua.TransferResult] = {}
        if held and not resumed:
            transfers = await _transfer(client, [g.subscription_id or 0 for g in held])
        republished = lost = recreated = 0
        for group in self._groups:
            recovery: Recovery | None = None
            if group.subscription_id is not None:
                result = transfers.get(group.subscription_id)
                if resumed or (result is not None and result.StatusCode.is_good()):
                    available = None if result is None else result.AvailableSequenceNumbers
                    try:
                        recovery = await group.adopt(client, available)
                    except BadSubscriptionIdInvalid:
                        group.forget()
            if recovery is None:
                recreated += 1 if group.subscription_id is not None else 0
                group.forget()
                await group.create(client, batch)
                await self._report_refused(group, group.nodes)
            else:
                republished += recovery.republished
                lost += recovery.lost
        kept = len(held) - recreated
        if kept:
            log.info(
                "source %s: %s %d subscription(s); %d missed message(s) republished, %d no"
                " longer held by the server",
                self.source_id,
                "session resumed with" if resumed else "a new session took over",
                kept,
                republished,
                lost,
            )
        if recreated:
            log.info(
                "source %s: the server no longer held %d subscription(s) (restart or expiry):"
                " subscribed again; current values follow, changes in between are not replayed",
                self.source_id,
                recreated,
            )

    async def _receive(self, client: Client, batch: int) -> None:
        """Notifications to readings; every TICK_S the watchdog and refused-node retries."""
        retry = Backoff(self._backoff.base_s, self._backoff.cap_s)
        retry_at = time.monotonic() + retry.next_delay()
        next_tick = time.monotonic() + TICK_S
        while True:
            notes = await self._inbox.take(max(0.0, next_tick - time.monotonic()), TAKE_MOST)
            if notes:
                await self._deliver(notes)
            now = time.monotonic()
            if now < next_tick:
                continue
            next_tick = now + TICK_S
            await self._watchdog(client, batch, now)
            if not any(group.refused for group in self._groups):
                retry.reset()
                retry_at = now + retry.next_delay()
            elif now >= retry_at:
                for group in self._groups:
                    if group.refused:
                        nodes = list(group.refused)
                        await group.monitor(client, nodes, batch)
                        await self._report_refused(group, nodes)
                retry_at = now + retry.next_delay()

    async def _watchdog(self, client: Client, batch: int, now: float) -> None:
        """Rebuild a subscription that stopped publishing (no data, no keep-alive) silently."""
        for group in self._groups:
            silent = group.silent_for(now)
            if silent is None:
                continue
            log.warning(
                "source %s: subscription %s silent for %.1f s (no data, no keep-alive);"
                " rebuilding it",
                self.source_id,
                group.subscription_id,
                silent,
            )
            self.health.resubscribes += 1
            await group.delete()
            await group.create(client, batch)
            await self._report_refused(group, group.nodes)
            log.info("source %s: subscription rebuilt as %s", self.source_id, group.subscription_id)

    async def _report_refused(self, group: NodeGroup, nodes: Sequence[MappedNode]) -> None:
        """Log each refused node once (and once when it is back); a BAD reading for each."""
        for node in nodes:
            status = group.refused.get(node)
            if status is None:
                if node.address in self._missing:
                    self._missing.discard(node.address)
                    log.info("source %s: node %s is monitored again", self.source_id, node.address)
                continue
            self._log_missing(node.address, status)
            await self._stream.put(missing_reading(self.source_id, node.address, utc_now()))

    def _log_missing(self, address: str, error: NodeError) -> None:
        if address not in self._missing:
            self._missing.add(address)
            log.warning("source %s: node %s: %s; retrying", self.source_id, address, error.name)

    async def _deliver(self, changes: Sequence[Change]) -> None:
        """The readings of changes taken together (received now, put in order)."""
        received_at = utc_now()
        readings: list[Reading] = []
        converters = self._values
        for change in changes:
            converter = converters.get(change.handle)
            if converter is None:  # not one of ours; handles are ours, so never expected
                continue
            if change.status in GONE:
                node = converter.node
                group = self._group_of[node.handle]
                if node.handle in group.items:  # retried with the refused nodes
                    await group.unmonitor(node, ua.StatusCode(ua.UInt32(change.status)))
            reading = converter.convert(change, received_at)
            if converter.error is not None:
                self.health.rejected += 1
            if reading is not None:
                readings.append(reading)
        await self._stream.put_many(readings)

    async def _put(self, node: MappedNode, value: ua.DataValue) -> None:
        """The node's reading (its converter logs a node's trouble once)."""
        converter = self._values[node.handle]
        reading = converter.convert(change_of(node.handle, value), utc_now())
        if converter.error is not None:
            self.health.rejected += 1
        if reading is not None:
            await self._stream.put(reading)

    async def _close(self, client: Client) -> None:
        """End the session; after a lost connection the server keeps it for resuming."""
        if client.uaclient.state is UaClientState.DISCONNECTED:
            client.session_state_path = None  # keep the file: the next session resumes from it
        else:
            for group in self._groups:
                group.forget()
            self._token = None
        await client.disconnect()  # asyncua logs what it cannot close

    # --- poll mode --------------------------------------------------------------------------

    async def _polling_session(self) -> None:
        client = await self._client()
        await client.connect()
        try:
            poller = Poller(self._nodes)
            await poller.start(client)
            self._connected()
            interval_s = self._source.poll_interval_ms / 1000
            while True:
                started = time.monotonic()
                if self._lost is not None:
                    raise SubscriptionLostError(self._lost)
                poll = await poller.poll(client)
                self._log_chunks({f.index: f.status for f in poll.failures})
                for node, error in poll.unresolved.items():
                    self._log_missing(node.address, error)
                    await self._stream.put(missing_reading(self.source_id, node.address, utc_now()))
                for node, value in poll.values:
                    if node.address in self._missing:
                        self._missing.discard(node.address)
                        log.info("source %s: node %s resolves again", self.source_id, node.address)
                    await self._put(node, value)
                await asyncio.sleep(max(0.0, started + interval_s - time.monotonic()))
        finally:
            await client.disconnect()

    def _log_chunks(self, failures: dict[int, ua.StatusCode]) -> None:
        for index, status in failures.items():
            if index not in self._failed_chunks:
                log.warning(
                    "source %s: read %d of the poll failed: %s; its nodes are BAD",
                    self.source_id,
                    index + 1,
                    status.name,
                )
        for index in self._failed_chunks - failures.keys():
            log.info("source %s: read %d of the poll works again", self.source_id, index + 1)
        self._failed_chunks = set(failures)


def _grouped(
    source: OpcUaSource, nodes: Sequence[MappedNode]
) -> list[tuple[ResolvedSubscription, list[MappedNode]]]:
    """The nodes by their subscription settings (a node listed twice keeps its first)."""
    settings: dict[str, ResolvedSubscription] = {}
    for configured in source.nodes:
        settings.setdefault(configured.address, source.settings_for(configured))
    groups: dict[ResolvedSubscription, list[MappedNode]] = {}
    for node in nodes:
        groups.setdefault(settings[node.address], []).append(node)
    return list(groups.items())


async def _transfer(client: Client, ids: list[int]) -> dict[int, ua.TransferResult]:
    """TransferSubscriptions to this session; empty when the server does not offer it."""
    try:
        results = await client.uaclient.transfer_subscriptions(
            ua.TransferSubscriptionsParameters(SubscriptionIds=ids, SendInitialValues=True)
        )
    except UaStatusCodeError as exc:
        log.debug("TransferSubscriptions refused: %s", exc)
        return {}
    return dict(zip(ids, results, strict=True))


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, SubscriptionLostError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
