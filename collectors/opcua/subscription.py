"""One OPC UA subscription per group of nodes with equal settings, and its recovery.

A `NodeGroup` owns one server subscription: its publishing interval, and one monitored item
per node with the group's sampling interval, queue size, discard policy and DataChangeFilter.
Notifications go to the collector's `Inbox` (bounded, DROP_OLDEST) and never wait for it.

Sequence numbers: every notification message carries one (a keep-alive carries the next one).
The group remembers the last it took; a jump means messages were sent and not received, and
they are asked for again with Republish before the newer message is taken; a number already
taken (a republished message sent twice) is skipped. After a reconnect `adopt` takes the
subscription over in the new or resumed session and republishes what the server still holds.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import count

from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_session import UaSession
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.uaerrors import BadMessageNotAvailable, UaError

from collectors.opcua.nodes import MappedNode, NodeError, item_queue_size, resolve_nodes
from collectors.opcua.wire import Change, DataChanges, changes_of
from taktline.model.sources import ResolvedSubscription

KEEPALIVE_S = 1.0
"""A keep-alive at least about this often when nothing changes (KeepAliveCount x interval)."""
LIFETIME_S = 120.0
"""How long the server keeps a subscription nobody publishes for (a cut network): long
enough to reconnect and take it over, in line with the 60 s session timeout."""
STALE_MIN_S = 3.0
"""A subscription is silent after max(3 x interval x KeepAliveCount, this) without any message."""
MAX_REPUBLISH = 1000
"""At most this many messages asked for again per recovery when the server does not say
which it holds."""

TRIGGERS = {
    "status": ua.DataChangeTrigger.Status,
    "status_value": ua.DataChangeTrigger.StatusValue,
    "status_value_timestamp": ua.DataChangeTrigger.StatusValueTimestamp,
}


class SubscriptionLostError(RuntimeError):
    """The server or the connection ended a subscription (Bad status, BadShutdown)."""


class Inbox:
    """The bounded queue between asyncua's publish loop and the collector's receive task.

    It holds a `Change` per data change (client handle, value, status, timestamps). Overflow
    policy DROP_OLDEST: `put_many` never waits (the publish loop must keep publishing and
    acknowledging), so when `maxsize` changes wait the oldest are dropped and counted in
    `dropped`. `fail(reason)` ends the session: `take` raises once the queue is drained.
    """

    def __init__(self, maxsize: int) -> None:
        self._items: deque[Change] = deque(maxlen=maxsize)
        self._maxsize = maxsize
        self._ready = asyncio.Event()
        self._failure: str | None = None
        self.dropped = 0

    def put_many(self, items: Sequence[Change]) -> None:
        """Queue the notifications of one message in order, dropping the oldest when full."""
        overflow = len(self._items) + len(items) - self._maxsize
        if overflow > 0:
            self.dropped += overflow
        self._items.extend(items)
        self._ready.set()

    def fail(self, reason: str) -> None:
        """The subscription ended; the first reason is kept."""
        if self._failure is None:
            self._failure = reason
        self._ready.set()

    def reset(self) -> None:
        """A new session starts: forget the failure, keep the queued notifications."""
        self._failure = None

    async def take(self, wait_s: float, most: int) -> list[Change]:
        """The oldest `most` notifications (or fewer); none after `wait_s`;
        SubscriptionLostError after fail() once none is left."""
        items = self._items
        if not items and self._failure is None:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), wait_s)
            except TimeoutError:
                return []
        if len(items) <= most:
            taken = list(items)
            items.clear()
        else:
            taken = [items.popleft() for _ in range(most)]
        if not taken and self._failure is not None:
            raise SubscriptionLostError(self._failure)
        return taken


@dataclass(frozen=True, slots=True)
class Recovery:
    """What a takeover got back: messages republished, and messages the server no longer had."""

    republished: int
    lost: int


class NodeGroup:
    """The nodes with equal subscription settings and the one server subscription for them."""

    def __init__(
        self, settings: ResolvedSubscription, nodes: Sequence[MappedNode], inbox: Inbox
    ) -> None:
        self.settings = settings
        self.nodes = list(nodes)
        self.subscription_id: int | None = None
        self.last_sequence: int | None = None
        self.items: dict[int, int] = {}
        """Client handle -> monitored item id of each node monitored now."""
        self.refused: dict[MappedNode, NodeError] = {}
        """Nodes not monitored now and why; retried by the collector."""
        self._inbox = inbox
        self._session: UaSession | None = None
        self._stale_after_s = STALE_MIN_S
        self._last_message = 0.0
        self._republished = 0
        self._lost = 0

    # --- creating -------------------------------------------------------------------------

    async def create(self, client: Client, batch: int) -> None:
        """A new server subscription and a monitored item per node, `batch` per call."""
        interval = self.settings.publishing_interval_ms
        keepalive = max(1, math.ceil(KEEPALIVE_S * 1000 / interval))
        params = ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=float(interval),
            RequestedLifetimeCount=max(3 * keepalive, math.ceil(LIFETIME_S * 1000 / interval)),
            RequestedMaxKeepAliveCount=keepalive,
            MaxNotificationsPerPublish=0,
            PublishingEnabled=True,
            Priority=0,
        )
        session = client.uaclient.session
        self.last_sequence = None
        self.items = {}
        self.refused = {}
        result = await session.create_subscription(params, self._on_publish)
        self.subscription_id = result.SubscriptionId
        self._session = session
        self._stale_after_s = max(
            3 * result.RevisedPublishingInterval / 1000 * result.RevisedMaxKeepAliveCount,
            STALE_MIN_S,
        )
        self._last_message = time.monotonic()
        await self.monitor(client, self.nodes, batch)

    async def monitor(self, client: Client, nodes: Sequence[MappedNode], batch: int) -> None:
        """Monitor `nodes` (resolved in this session); the ones refused land in `refused`."""
        assert self.subscription_id is not None and self._session is not None
        pending: list[tuple[MappedNode, ua.MonitoredItemCreateRequest]] = []
        for node, node_id in zip(nodes, await resolve_nodes(client, nodes), strict=True):
            if isinstance(node_id, NodeError):
                self.refused[node] = node_id
            else:
                pending.append((node, self._request(node.handle, node_id)))
        for start in range(0, len(pending), batch):
            chunk = pending[start : start + batch]
            results = await self._session.create_monitored_items(
                ua.CreateMonitoredItemsParameters(
                    SubscriptionId=self.subscription_id,
                    TimestampsToReturn=ua.TimestampsToReturn.Both,
                    ItemsToCreate=[request for _, request in chunk],
                )
            )
            for (node, _), result in zip(chunk, results, strict=True):
                if result.StatusCode.is_good():
                    self.items[node.handle] = result.MonitoredItemId
                    self.refused.pop(node, None)
                else:
                    self.refused[node] = NodeError(result.StatusCode, result.StatusCode.doc)

    def _request(self, handle: int, node_id: ua.NodeId) -> ua.MonitoredItemCreateRequest:
        s = self.settings
        parameters = ua.MonitoringParameters(
            ClientHandle=handle,
            SamplingInterval=float(s.sampling_interval_ms),
            QueueSize=s.queue_size
            or item_queue_size(s.publishing_interval_ms, s.sampling_interval_ms),
            DiscardOldest=s.discard_oldest,
        )
        if s.trigger != "status_value" or s.deadband is not None:
            parameters.Filter = ua.DataChangeFilter(
                Trigger=TRIGGERS[s.trigger],
                DeadbandType=(
                    ua.DeadbandType.Absolute if s.deadband is not None else ua.DeadbandType.None_
                ),
                DeadbandValue=s.deadband or 0.0,
            )
        return ua.MonitoredItemCreateRequest(
            ItemToMonitor=ua.ReadValueId(NodeId=node_id, AttributeId=AttributeIds.Value),
            MonitoringMode=ua.MonitoringMode.Reporting,
            RequestedParameters=parameters,
        )

    async def unmonitor(self, node: MappedNode, status: ua.StatusCode) -> None:
        """Drop the monitored item of a node the server says is gone; it is retried later."""
        self.refused[node] = NodeError(status, "the node is gone from the server")
        item = self.items.pop(node.handle, None)
        if item is None or self._session is None or self.subscription_id is None:
            return
        await self._session.delete_monitored_items(
            ua.DeleteMonitoredItemsParameters(
                SubscriptionId=self.subscription_id, MonitoredItemIds=[item]
            )
        )

    async def delete(self) -> None:
        """Delete the server subscription; a per-id Bad result (already gone) is fine."""
        if self._session is not None and self.subscription_id is not None:
            await self._session.delete_subscriptions([self.subscription_id])
        self.forget()

    def forget(self) -> None:
        """The server subscription is gone (closed session, restarted server)."""
        self.subscription_id = None
        self.last_sequence = None
        self.items = {}
        self._session = None

    # --- taking over after a reconnect ------------------------------------------------------

    async def adopt(self, client: Client, available: Sequence[int] | None) -> Recovery:
        """Route this subscription's messages in `client`'s session and republish the missed.

        `available`: the sequence numbers the server still holds (from TransferSubscriptions);
        None when the session was resumed: then messages are asked for in order until the
        server has no more.
        """
        assert self.subscription_id is not None
        session = client.uaclient.session
        # asyncua 2.1 has no public call to route a subscription the session did not create
        # (its own Subscription.restore() does the same).
        session._subscription_callbacks[self.subscription_id] = self._on_publish
        self._session = session
        self._last_message = time.monotonic()
        self._republished = self._lost = 0
        start = (self.last_sequence or 0) + 1
        if available is None:
            await self._republish(count(start), until_missing=True)
        elif available:
            held = set(available)
            numbers = range(start, max(held) + 1)
            self._lost += sum(1 for n in numbers if n not in held)
            await self._republish((n for n in numbers if n in held), until_missing=False)
        session.ensure_publish_loop()
        return Recovery(self._republished, self._lost)

    async def _republish(self, numbers: Iterable[int], *, until_missing: bool) -> None:
        assert self._session is not None and self.subscription_id is not None
        for asked, number in enumerate(numbers):
            if until_missing and asked >= MAX_REPUBLISH:
                return
            try:
                message = await self._session.republish(self.subscription_id, number)
            except BadMessageNotAvailable:
                message = None
            # asyncua's own server answers an empty message instead of BadMessageNotAvailable
            if message is None or message.SequenceNumber != number:
                if until_missing:
                    return
                self._lost += 1
                continue
            self._republished += 1
            self._take(message)
            self.last_sequence = max(self.last_sequence or 0, number)

    # --- receiving ----------------------------------------------------------------------------

    async def _on_publish(self, result: ua.PublishResult) -> None:
        """asyncua's publish loop hands over each message of this subscription (awaited)."""
        if result.SubscriptionId != self.subscription_id:
            return  # a subscription this group replaced
        self._last_message = time.monotonic()
        message = result.NotificationMessage
        number = message.SequenceNumber
        if number and self.last_sequence is not None and number > self.last_sequence + 1:
            try:
                await self._republish(range(self.last_sequence + 1, number), until_missing=False)
            except (UaError, OSError, TimeoutError) as exc:
                self._inbox.fail(f"republish failed: {type(exc).__name__}")
                return
        if not message.NotificationData:
            return  # a keep-alive
        if number:  # 0: asyncua's own status message on a lost connection
            if self.last_sequence is not None and number <= self.last_sequence:
                return  # taken already (republished)
            self.last_sequence = number
        self._take(message)

    def _take(self, message: ua.NotificationMessage) -> None:
        for data in message.NotificationData:
            if isinstance(data, DataChanges):
                self._inbox.put_many(data.changes)
            elif isinstance(data, ua.DataChangeNotification):  # republished: asyncua read it
                self._inbox.put_many(changes_of(data))
            elif isinstance(data, ua.StatusChangeNotification) and not data.Status.is_good():
                self._inbox.fail(f"subscription ended: {data.Status.name}")

    def silent_for(self, now: float) -> float | None:
        """Seconds without any message (data or keep-alive) once past the limit, else None."""
        if self.subscription_id is None:
            return None
        silent = now - self._last_message
        return silent if silent > self._stale_after_s else None
