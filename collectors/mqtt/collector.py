"""The MQTT collector: subscribe to the mapped topics, turn each message into a Reading.

Data path and overflow: paho/aiomqtt receive (and acknowledge QoS 1) messages into aiomqtt's
incoming queue -> receive task (here: parse) -> ReadingStream (bounded, BLOCK). While the
consumer is slow the receive task waits (back-pressure) and aiomqtt keeps queueing incoming
messages (unbounded: `taktline.mqttclient` sets no `max_queued_incoming_messages`).
"""

from __future__ import annotations

import asyncio
import logging

import aiomqtt

from collectors.base import SourceHealth
from collectors.mqtt.payload import PayloadError, Rejection, parse
from collectors.support import (
    BackgroundCollector,
    Backoff,
    OutageLog,
    ReadingStream,
    Throttle,
    utc_now,
)
from taktline.model.sources import MqttSource, MqttTopic
from taktline.mqttclient import mqtt_client
from taktline.records import Reading

log = logging.getLogger(__name__)


class MqttCollector(BackgroundCollector):
    """Reads the mapped topics of one broker as Readings (see the module docstring).

    The session is persistent (a stable client id: the configured one, else
    `taktline-<source id>`), and every connect subscribes again, so a broker that lost its
    state is fine too. Bad messages are counted in `health.rejected` and per reason in
    `health.rejected_by_reason`, logged at most once per topic per minute, and never stop
    the collector.
    """

    def __init__(
        self, source: MqttSource, *, queue_size: int = 10_000, backoff: Backoff | None = None
    ) -> None:
        self.source_id = source.id
        self.health = SourceHealth(source.id)
        self._source = source
        self._filters = list(dict.fromkeys(mapping.topic for mapping in source.topics))
        self._exact = {m.topic: m for m in reversed(source.topics) if not _is_wildcard(m.topic)}
        self._wildcards = [m for m in source.topics if _is_wildcard(m.topic)]
        self._backoff = backoff or Backoff()
        self._queue_size = queue_size
        self._stream = ReadingStream(self.health, queue_size)
        self._outage = OutageLog(log, self.health)
        self._throttle = Throttle()
        self._sessions = 0

    async def _run(self) -> None:
        # Built here (aiomqtt needs a running loop) and reused for every reconnect.
        client = mqtt_client(
            self._source.broker,
            identifier=self._source.broker.client_id or f"taktline-{self.source_id}",
            persistent_session=True,
            max_queued_incoming=self._queue_size,
        )
        while True:
            try:
                async with client:
                    await self._subscribe(client)
                    if self._sessions:
                        self.health.reconnects += 1
                    self._sessions += 1
                    self._backoff.reset()
                    self._outage.connected()
                    async for message in client.messages:
                        await self._handle(message)
            except aiomqtt.MqttError as exc:
                cause = f" ({exc.__cause__})" if exc.__cause__ else ""
                self._outage.failed(f"{type(exc).__name__}: {exc}{cause}")
            await asyncio.sleep(self._backoff.next_delay())

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        for topic in self._filters:
            granted = await client.subscribe(topic, qos=self._source.qos)
            if any(_refused(code) for code in granted):
                log.warning("source %s: broker refused subscription to %s", self.source_id, topic)

    async def _handle(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        mapping = self._mapping(message.topic)
        try:
            if mapping is None:
                raise PayloadError(Rejection.UNKNOWN_TOPIC, "no mapping for this topic")
            if not isinstance(message.payload, bytes | bytearray):
                raise PayloadError(Rejection.WRONG_TYPE, "payload is not bytes")
            count = parse(mapping, bytes(message.payload))
        except PayloadError as exc:
            self._reject(topic, exc)
            return
        await self._stream.put(
            Reading(
                source_id=self.source_id,
                address=mapping.topic,
                value=count.value,
                source_ts=count.ts,
                server_ts=None,
                received_at=utc_now(),
            )
        )

    def _mapping(self, topic: aiomqtt.Topic) -> MqttTopic | None:
        """The first mapping (in config order) whose topic or filter matches."""
        exact = self._exact.get(topic.value)
        wildcard = next((m for m in self._wildcards if topic.matches(m.topic)), None)
        if exact is None or wildcard is None:
            return exact or wildcard
        return min(exact, wildcard, key=self._source.topics.index)

    def _reject(self, topic: str, error: PayloadError) -> None:
        self.health.rejected += 1
        by_reason = self.health.rejected_by_reason
        by_reason[error.reason] = by_reason.get(error.reason, 0) + 1
        if self._throttle.ready(topic):
            log.warning(
                "source %s: rejected message on %s: %s (%d rejected so far)",
                self.source_id,
                topic,
                error,
                self.health.rejected,
            )


def _is_wildcard(topic: str) -> bool:
    return "+" in topic.split("/") or topic.endswith("#")


def _refused(code: object) -> bool:
    """A SUBACK entry that refuses: 0x80 (3.1.1) or a failure reason code (5)."""
    if isinstance(code, int):
        return code >= 0x80
    return bool(getattr(code, "is_failure", False))
