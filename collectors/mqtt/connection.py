"""One subscriber connection to the broker on an asyncio transport, speaking taktline.mqttwire.

`open_subscriber` connects and logs in with a persistent session (clean session false on 3.1.1;
clean start false, Session Expiry Interval and Receive Maximum on 5; taktline.mqttlink: TCP or
TLS, CONNACK, keepalive, a silent broker given up, not while reading is paused). Every read's
PUBLISH packets are decoded in one loop and handed to `deliver` as one list. When the
connection ends, `closed` resolves with the reason; reconnecting is the session's job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from taktline.model.connections import MqttConnection
from taktline.mqttclient import SESSION_EXPIRY_S
from taktline.mqttlink import MqttLink, open_link
from taktline.mqttwire import (
    ConnAck,
    Inbound,
    Message,
    MqttProtocolError,
    MqttVersion,
    PacketType,
    binary,
    connect_packet,
    parse_suback,
    publish_qos0_packet,
    subscribe_packet,
)

_SUBSCRIBE_ID = 1
"""The packet id of the one SUBSCRIBE per connection (QoS 1 messages come from the broker's
own packet id space, so this never clashes)."""


class SubscriberConnection(MqttLink):
    """The protocol side of one connection; `generation` numbers it within its session."""

    def __init__(
        self,
        version: MqttVersion,
        generation: int,
        deliver: Callable[[SubscriberConnection, list[Message]], None],
    ) -> None:
        super().__init__(version)
        self.generation = generation
        self._deliver = deliver
        self._inbound = Inbound(version)
        self._suback: asyncio.Future[list[int]] | None = None

    def subscribe(self, filters: Sequence[tuple[str, int]]) -> asyncio.Future[list[int]]:
        """Send SUBSCRIBE (once per connection); the future resolves to the SUBACK's code per
        filter, or fails with ConnectionError when the connection ends first."""
        self._suback = self._loop.create_future()
        if not self.usable:
            self._suback.set_exception(ConnectionError("not connected"))
        self.write(subscribe_packet(self.version, _SUBSCRIBE_ID, filters))
        return self._suback

    def publish(self, topic: str, payload: bytes) -> None:
        """Send one QoS 0 message if the connection is usable."""
        self.write(publish_qos0_packet(self.version, binary(topic.encode()), payload))

    def data_received(self, data: bytes) -> None:
        self._last_received = self._loop.time()
        try:
            messages, others = self._inbound.feed(data)
        except MqttProtocolError as exc:
            self.abort(f"protocol error: {exc}")
            return
        if messages:
            self._deliver(self, messages)
        for first, body in others:
            kind = first >> 4
            if kind == PacketType.SUBACK and self._suback and not self._suback.done():
                try:
                    packet_id, codes = parse_suback(self.version, body)
                    if packet_id != _SUBSCRIBE_ID:
                        raise MqttProtocolError(f"SUBACK for packet id {packet_id}")
                except MqttProtocolError as exc:
                    self.abort(f"protocol error: {exc}")
                    return
                self._suback.set_result(codes)
            elif not self._control(kind, body):
                self.abort(f"unexpected packet type {kind} from the broker")
            if self.closed.done():
                return

    def _ended(self, reason: str) -> None:
        if self._suback is not None and not self._suback.done():
            self._suback.set_exception(ConnectionError(reason))


async def open_subscriber(
    subscriber: SubscriberConnection,
    connection: MqttConnection,
    client_id: str,
    *,
    receive_maximum: int,
    timeout_s: float,
) -> ConnAck:
    """Connect `subscriber` and log in with a persistent session; raises OSError (TimeoutError
    and ConnectionError included: also when the connection drops before CONNACK),
    BrokerRefusedError, or SecretError (the password cannot be read)."""
    password = None
    if connection.username is not None and connection.password is not None:
        password = connection.password.reveal()
    connect = connect_packet(
        subscriber.version,
        client_id,
        connection.keepalive_s,
        username=connection.username,
        password=password,
        clean=False,
        session_expiry_s=SESSION_EXPIRY_S,
        receive_maximum=receive_maximum,
    )
    return await open_link(subscriber, connection, connect, timeout_s)
