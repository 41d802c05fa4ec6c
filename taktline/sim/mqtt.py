"""Publishes an MQTT source's counters as its devices would, reconnecting with backoff."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

import aiomqtt

from taktline.model.paths import CounterPath
from taktline.model.sources import MqttSource, MqttTopic
from taktline.mqttclient import mqtt_client
from taktline.sim.payload import build_payload

log = logging.getLogger(__name__)

BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 10.0
_NOTHING_WAITING = sys.maxsize


@dataclass(frozen=True, slots=True)
class TopicFeed:
    """A topic of the source and the counter it carries.

    `increments`: the counter has `increment` semantics, so a message carries the units counted
    since the previous message instead of the register.
    """

    mapping: MqttTopic
    path: CounterPath
    increments: bool


@dataclass(frozen=True, slots=True)
class _Message:
    feed: TopicFeed
    count: int
    moment: dt.datetime
    first_seq: int
    """Sequence number of the oldest offer this message carries (for `flushed`)."""


class MqttPublisher:
    """Publishes one MQTT source's counters at the source's QoS.

    Overflow policy: conflate. At most one message per topic waits: a `total` counter's newest
    register replaces the waiting one (sent retained); an `increment` counter's units add up into
    the waiting message (sent not retained). The broker's acknowledgement (QoS 1) or the write to
    the socket (QoS 0) marks a message published.
    """

    def __init__(self, source: MqttSource, feeds: Sequence[TopicFeed]) -> None:
        self.source = source
        self._feeds: dict[CounterPath, list[TopicFeed]] = {}
        for feed in feeds:
            self._feeds.setdefault(feed.path, []).append(feed)
        self._waiting: dict[str, _Message] = {}
        self._in_flight: _Message | None = None
        self._latest_totals: dict[str, _Message] = {}
        self._seq = 0
        self._wakeup = asyncio.Event()
        self._progress = asyncio.Condition()
        self._client_id = f"taktline-sim-{source.id}-{os.urandom(3).hex()}"

    def offer(self, path: CounterPath, register: int, delta: int, moment: dt.datetime) -> None:
        """A register changed by `delta` units (0: a reset) to `register`; never blocks."""
        for feed in self._feeds.get(path, ()):
            if feed.increments and delta == 0:
                continue
            self._seq += 1
            topic = feed.mapping.topic
            waiting = self._waiting.get(topic)
            first = min(waiting.first_seq, self._seq) if waiting else self._seq
            if feed.increments:
                count = delta + (waiting.count if waiting else 0)
                self._waiting[topic] = _Message(feed, count, moment, first)
            else:
                message = _Message(feed, register, moment, first)
                self._waiting[topic] = self._latest_totals[topic] = message
        self._wakeup.set()

    async def flushed(self) -> None:
        """Return once everything offered so far is published (waits while the broker is away)."""
        target = self._seq
        async with self._progress:
            await self._progress.wait_for(lambda: self._oldest_unpublished() > target)

    def _oldest_unpublished(self) -> int:
        messages = [*self._waiting.values(), *([self._in_flight] if self._in_flight else [])]
        return min((message.first_seq for message in messages), default=_NOTHING_WAITING)

    async def run(self) -> None:
        """Connect, publish what is offered, reconnect with backoff; runs until cancelled."""
        broker = self.source.broker
        delay, failing = BACKOFF_START_S, False
        while True:
            try:
                async with mqtt_client(broker, identifier=self._client_id) as client:
                    if failing:
                        log.info("simulator: MQTT broker of source %s is back", self.source.id)
                    delay, failing = BACKOFF_START_S, False
                    self._send_totals_again()
                    await self._publish_waiting(client)
            except aiomqtt.MqttError as exc:
                if not failing:
                    log.warning(
                        "simulator: MQTT broker %s:%d of source %s unavailable (%s); retrying",
                        broker.host,
                        broker.port,
                        self.source.id,
                        exc,
                    )
                failing = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)

    def _send_totals_again(self) -> None:
        """After a (re)connect, the registers' current values go out again (the broker may have
        lost its retained messages); they do not hold up `flushed`."""
        for topic, message in self._latest_totals.items():
            if topic not in self._waiting:
                self._waiting[topic] = replace(message, first_seq=_NOTHING_WAITING)
        self._wakeup.set()

    async def _publish_waiting(self, client: aiomqtt.Client) -> None:
        while True:
            if not self._waiting:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            topic = next(iter(self._waiting))
            message = self._in_flight = self._waiting.pop(topic)
            payload = build_payload(message.feed.mapping, message.count, message.moment)
            try:
                await client.publish(
                    topic, payload, qos=self.source.qos, retain=not message.feed.increments
                )
            except aiomqtt.MqttError:
                self._put_back(topic, message)
                raise
            finally:
                self._in_flight = None
            async with self._progress:
                self._progress.notify_all()

    def _put_back(self, topic: str, message: _Message) -> None:
        """A message that did not make it waits again, merged with what came since."""
        newer = self._waiting.get(topic)
        if newer is None:
            self._waiting[topic] = message
        elif message.feed.increments:
            count = message.count + newer.count
            first = min(message.first_seq, newer.first_seq)
            self._waiting[topic] = replace(newer, count=count, first_seq=first)
        else:
            self._waiting[topic] = replace(newer, first_seq=min(message.first_seq, newer.first_seq))
