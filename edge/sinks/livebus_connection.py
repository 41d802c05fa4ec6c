"""One connection of the live-bus sink to its broker: QoS 1 publishes on an asyncio transport.

`open_broker` connects and logs in with a clean session and the will (taktline.mqttlink: TCP
or TLS, CONNACK, keepalive, a silent broker given up). `publish` writes a whole list of
messages in one transport write and returns a future that resolves when the broker
acknowledged the last of them (PUBACK), with the first refusal's reason, if any. When the
connection ends, every unacknowledged publish fails with SinkUnavailableError and `closed`
resolves with the reason; reconnecting is the sink's job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from edge.sinks.errors import SinkUnavailableError
from taktline.model.connections import MqttConnection
from taktline.mqttlink import MqttLink, open_link
from taktline.mqttwire import (
    Frames,
    MqttProtocolError,
    MqttVersion,
    PacketType,
    Will,
    connect_packet,
    publish_packet,
)

_PUBACK = PacketType.PUBACK
_REFUSED = 0x80
"""PUBACK reason codes from here up refuse the message (MQTT 5)."""


@dataclass(slots=True)
class _Window:
    """The PUBACKs one `publish` call waits for."""

    done: asyncio.Future[str | None]
    remaining: int
    refused: str | None = None


class BrokerConnection(MqttLink):
    """The protocol side of one live-bus connection (made by `open_broker`)."""

    def __init__(self, version: MqttVersion) -> None:
        super().__init__(version)
        self._frames = Frames()
        self._pending: dict[int, _Window] = {}
        self._last_id = 0
        self.receive_maximum: int | None = None
        """The broker's Receive Maximum (MQTT 5), once connected."""

    @property
    def in_flight(self) -> int:
        """Publishes sent and not acknowledged yet."""
        return len(self._pending)

    def publish(
        self, messages: Sequence[tuple[bytes, bytes]], *, retain: bool
    ) -> asyncio.Future[str | None]:
        """Send (length-prefixed topic, payload) pairs at QoS 1; the future resolves when all
        are acknowledged, to None or the first refusal, or fails when the connection ends."""
        done: asyncio.Future[str | None] = self._loop.create_future()
        if not self.usable:
            done.set_exception(SinkUnavailableError("live bus not connected"))
            return done
        if not messages:
            done.set_result(None)
            return done
        window = _Window(done, len(messages))
        pending = self._pending
        version = self.version
        packets: list[bytes] = []
        for topic, payload in messages:
            packet_id = self._allocate()
            pending[packet_id] = window
            packets.append(publish_packet(version, topic, payload, packet_id, retain=retain))
        self.write(b"".join(packets))
        return done

    def data_received(self, data: bytes) -> None:
        self._last_received = self._loop.time()
        try:
            packets = self._frames.feed(data)
        except MqttProtocolError as exc:
            self.abort(f"protocol error: {exc}")
            return
        pending = self._pending
        for first, body in packets:
            kind = first >> 4
            if kind == _PUBACK and len(body) >= 2:
                window = pending.pop((body[0] << 8) | body[1], None)
                if window is None:
                    continue
                if len(body) > 2 and body[2] >= _REFUSED and window.refused is None:
                    window.refused = f"PUBACK reason code {body[2]:#04x}"
                window.remaining -= 1
                if not window.remaining and not window.done.done():
                    window.done.set_result(window.refused)
            elif not self._control(kind, body):
                self.abort(f"unexpected packet type {kind} from the broker")
            if self.closed.done():
                return

    def _ended(self, reason: str) -> None:
        error = SinkUnavailableError(f"live bus {reason}")
        for window in self._pending.values():
            if not window.done.done():
                window.done.set_exception(error)
        self._pending.clear()

    def _allocate(self) -> int:
        packet_id = self._last_id
        while True:
            packet_id = packet_id % 0xFFFF + 1
            if packet_id not in self._pending:
                self._last_id = packet_id
                return packet_id


async def open_broker(
    connection: MqttConnection,
    client_id: str,
    will: Will,
    password: str | None,
    timeout_s: float,
) -> BrokerConnection:
    """Connect and log in (clean session, `will`); raises OSError (TimeoutError and
    ConnectionError included) or BrokerRefusedError."""
    broker = BrokerConnection(connection.protocol)
    connack = await open_link(
        broker,
        connection,
        connect_packet(
            connection.protocol,
            client_id,
            connection.keepalive_s,
            will=will,
            username=connection.username,
            password=password,
        ),
        timeout_s,
    )
    broker.receive_maximum = connack.receive_maximum
    return broker
