"""The MQTT collector: mapped topics, topic templates and Sparkplug B nodes into Readings.

Data path and overflow (each stage bounded; see README.md, "Flow control"):

    broker --(QoS 1: at most receive_maximum unacknowledged)--> asyncio transport (our codec)
    -> MqttSession pending list (max_pending, BLOCK: pauses reading the socket)
    -> this task: parse a batch -> ReadingStream (queue_size, BLOCK) -> the edge
    -> outbox commit -> `acknowledge(receipts)` -> PUBACK

A QoS 1 message that becomes a reading carries a receipt and is acknowledged only when the edge
hands the receipt back after the outbox commit that holds it. A message that becomes no reading
(rejected, a duplicate, a Sparkplug metric nobody mapped) is acknowledged at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence

from collectors.base import SourceHealth
from collectors.mqtt.dedupe import RecentIds
from collectors.mqtt.payload import PayloadError, Rejection, parse
from collectors.mqtt.routes import Router
from collectors.mqtt.session import MqttSession
from collectors.mqtt.sparkplug import codec
from collectors.mqtt.sparkplug.host import HostStats, SparkplugHost
from collectors.support import BackgroundCollector, Backoff, ReadingStream, Throttle, utc_now
from taktline.model.sources import MqttSource
from taktline.mqttwire import Message
from taktline.records import Quality, Reading

log = logging.getLogger(__name__)


class MqttCollector(BackgroundCollector):
    """Reads one broker's mapped topics, templates and Sparkplug B group as Readings.

    Bad messages are counted in `health.rejected` and per reason in
    `health.rejected_by_reason`, logged at most once per topic per minute, acknowledged, and
    never stop the collector. Duplicates (same message id on the same address within
    `dedupe_window` messages) are counted under `duplicate` and dropped.
    """

    def __init__(
        self,
        source: MqttSource,
        *,
        queue_size: int = 10_000,
        backoff: Backoff | None = None,
        max_pending: int | None = None,
    ) -> None:
        self.source_id = source.id
        self.health = SourceHealth(source.id)
        self._source = source
        self._router = Router(source)
        self._recent = RecentIds(source.dedupe_window)
        self._host = SparkplugHost(source.sparkplug) if source.sparkplug else None
        subscriptions = [(topic, source.qos) for topic in self._router.subscriptions]
        if source.sparkplug is not None:
            subscriptions += [(t, source.qos) for t in codec.filters(source.sparkplug.group)]
        self._session = MqttSession(
            source.broker,
            client_id=source.broker.client_id or f"taktline-{source.id}",
            subscriptions=subscriptions,
            health=self.health,
            backoff=backoff or Backoff(),
            receive_maximum=source.receive_maximum,
            max_pending=max_pending or max(queue_size, source.receive_maximum),
        )
        self._stream = ReadingStream(self.health, queue_size)
        self._throttle = Throttle()

    @property
    def sparkplug(self) -> HostStats | None:
        """Sparkplug births, deaths, seq gaps and rebirth requests (None without Sparkplug)."""
        return self._host.stats if self._host is not None else None

    def acknowledge(self, receipts: Sequence[int]) -> None:
        """The edge committed the readings with these receipts: acknowledge their messages."""
        self._session.ack(receipts)

    async def _run(self) -> None:
        async with self._session:
            generation = 0
            while True:
                batch = await self._session.next_batch()
                received_at = utc_now()
                for item in batch:
                    if isinstance(item, int):
                        generation = item
                        continue
                    receipt = (
                        self._session.receipt(generation, item.packet_id) if item.qos else None
                    )
                    readings = self._readings(item, received_at, receipt)
                    if not readings and receipt is not None:
                        self._session.ack([receipt])
                    for reading in readings:
                        await self._stream.put(reading)

    def _readings(
        self, message: Message, received_at: dt.datetime, receipt: int | None
    ) -> list[Reading]:
        """The readings one message carries (none when it is rejected or a duplicate); the
        last one carries the message's receipt."""
        topic = message.topic
        try:
            route = self._router.route(topic)
            if route is None:
                if self._host is not None and topic.startswith(codec.NAMESPACE + "/"):
                    readings = self._sparkplug(topic, message.payload)
                    if readings and receipt is not None:
                        readings[-1] = readings[-1]._replace(receipt=receipt)
                    return readings
                raise PayloadError(Rejection.UNKNOWN_TOPIC, "no mapping for this topic")
            count = parse(route.payload, message.payload, self._source.max_payload_bytes)
        except PayloadError as exc:
            self._reject(topic, exc)
            return []
        if count.message_id is not None and self._recent.seen_before(
            route.address, count.message_id
        ):
            self._count("duplicate")
            return []
        return [
            Reading(
                self.source_id,
                route.address,
                count.value,
                count.ts,
                None,
                received_at,
                message_id=count.message_id,
                receipt=receipt,
            )
        ]

    def _sparkplug(self, topic: str, payload: bytes) -> list[Reading]:
        assert self._host is not None
        parts = codec.parse_topic(topic)
        if parts is None or parts.group != self._host.group:
            raise PayloadError(Rejection.UNKNOWN_TOPIC, "not a Sparkplug topic of this group")
        if len(payload) > self._source.max_payload_bytes:
            raise PayloadError(Rejection.TOO_LARGE, f"{len(payload)} bytes")
        decoded = codec.decode(payload)
        outcome = self._host.handle(parts, decoded, time.monotonic())
        now = utc_now()
        if outcome.rebirth:
            log.info("sparkplug %s/%s: asking for a rebirth", parts.group, parts.node)
            self._session.publish(
                f"{codec.NAMESPACE}/{parts.group}/NCMD/{parts.node}", codec.rebirth_request(now)
            )
        for reason, detail in outcome.problems:
            self._reject(topic, PayloadError(reason, detail))
        readings = [
            Reading(self.source_id, address, None, None, None, now, Quality.BAD)
            for address in outcome.stale
        ]
        for address, metric in outcome.values:
            try:
                value = codec.metric_count(metric)
                ts = codec.metric_ts(metric, decoded)
            except PayloadError as exc:
                self._reject(topic, exc)
                continue
            quality = Quality.GOOD if value is not None else Quality.BAD
            readings.append(Reading(self.source_id, address, value, ts, None, now, quality))
        return readings

    def _reject(self, topic: str, error: PayloadError) -> None:
        self.health.rejected += 1
        self._count(error.reason)
        if self._throttle.ready(topic):
            log.warning(
                "source %s: rejected message on %s: %s (%d rejected so far)",
                self.source_id,
                topic,
                error,
                self.health.rejected,
            )

    def _count(self, reason: str) -> None:
        by_reason = self.health.rejected_by_reason
        by_reason[reason] = by_reason.get(reason, 0) + 1
