"""What every broker connection of ours shares, on an asyncio transport (taktline.mqttwire).

`MqttLink` is the protocol base of the live-bus publisher (edge.sinks.livebus_connection) and
the MQTT collector's subscriber (collectors.mqtt.connection): the transport, CONNACK, the
control packets every client handles (PINGRESP, DISCONNECT), keepalive and closing.
`open_link` connects (TCP or TLS), sends a CONNECT the caller built and waits for CONNACK.

Keepalive: PINGREQ every half keepalive; a broker that answered nothing for 1.5 keepalives is
given up (a broker that hangs without closing the socket), except while reading is paused:
then its answers wait unread in the socket. When the link ends, `closed` resolves with the
reason and `_ended` lets the subclass fail what still waits; reconnecting is the owner's job.
"""

from __future__ import annotations

import asyncio

from taktline.model.connections import MqttConnection
from taktline.mqttclient import tls_context
from taktline.mqttwire import (
    PINGREQ,
    ConnAck,
    MqttProtocolError,
    MqttVersion,
    PacketType,
    disconnect_packet,
    parse_connack,
)


class BrokerRefusedError(ConnectionError):
    """The broker answered CONNECT with a refusal."""


class MqttLink(asyncio.Protocol):
    """The shared protocol side of one broker connection; subclasses read the data."""

    def __init__(self, version: MqttVersion) -> None:
        self.version = version
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._last_received = self._loop.time()
        self._keepalive: asyncio.Task[None] | None = None
        self.paused = False
        """Reading is paused (the owner cannot take more now)."""
        self.connack: asyncio.Future[ConnAck] = self._loop.create_future()
        self.closed: asyncio.Future[str] = self._loop.create_future()

    @property
    def opened(self) -> bool:
        """The TCP (and TLS) connection was made; `closed` will resolve."""
        return self._transport is not None

    @property
    def usable(self) -> bool:
        """Connected, accepted, and not closing."""
        return (
            self._transport is not None
            and not self._transport.is_closing()
            and self.connack.done()
            and not self.closed.done()
        )

    def write(self, data: bytes) -> None:
        """Send bytes now if the link is usable (else they are dropped: see callers)."""
        if self.usable:
            assert self._transport is not None
            self._transport.write(data)

    def pause(self) -> None:
        """Stop reading the socket: TCP back-pressure reaches the broker."""
        if not self.paused and self._transport is not None:
            self.paused = True
            self._transport.pause_reading()

    def resume(self) -> None:
        """Read the socket again."""
        if self.paused and self._transport is not None:
            self.paused = False
            self._last_received = self._loop.time()  # its answers waited in the socket
            self._transport.resume_reading()

    def disconnect(self) -> None:
        """A normal DISCONNECT (the broker drops the will, keeps a persistent session), close."""
        self.write(disconnect_packet(self.version))
        if self._transport is not None:
            self._transport.close()

    def abort(self, reason: str) -> None:
        """Drop the connection at once (the broker publishes the will)."""
        self._settle(reason)
        if self._transport is not None:
            self._transport.abort()

    def start_keepalive(self, keepalive_s: int) -> None:
        """Ping every half `keepalive_s`; abort when the broker is silent for 1.5 times it."""
        if keepalive_s > 0:
            self._keepalive = self._loop.create_task(self._ping(keepalive_s), name="mqtt ping")

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._settle(f"connection lost: {exc}" if exc else "connection closed by the broker")

    # for subclasses

    def _control(self, kind: int, body: bytes) -> bool:
        """Handle CONNACK, PINGRESP and DISCONNECT; False for any other packet type. Aborts on
        a malformed one (then True: the packet was dealt with)."""
        if kind == PacketType.PINGRESP:
            return True
        if kind == PacketType.CONNACK:
            if not self.connack.done():
                try:
                    self.connack.set_result(parse_connack(self.version, body))
                except MqttProtocolError as exc:
                    self.abort(f"protocol error: {exc}")
            return True
        if kind == PacketType.DISCONNECT:
            code = f" (reason code {body[0]:#04x})" if body else ""
            self.abort(f"the broker disconnected{code}")
            return True
        return False

    def _ended(self, reason: str) -> None:
        """The link ended: fail whatever still waits on it (subclasses extend)."""

    # inside

    def _settle(self, reason: str) -> None:
        if self.closed.done():
            return
        self.closed.set_result(reason)
        if self._keepalive is not None:
            self._keepalive.cancel()
        if not self.connack.done():
            self.connack.set_exception(ConnectionError(reason))
        self._ended(reason)

    async def _ping(self, keepalive_s: int) -> None:
        while self._transport is not None and not self._transport.is_closing():
            await asyncio.sleep(keepalive_s / 2)
            silent = self._loop.time() - self._last_received
            if not self.paused and silent > keepalive_s * 1.5:
                self.abort(f"no answer from the broker for {keepalive_s * 1.5:g} s")
                return
            self.write(PINGREQ)


async def open_link(
    link: MqttLink, connection: MqttConnection, connect: bytes, timeout_s: float
) -> ConnAck:
    """Connect `link`, send the `connect` packet, wait for CONNACK, start the keepalive.

    Raises OSError (TimeoutError and ConnectionError included: also when the connection drops
    before CONNACK) or BrokerRefusedError.
    """
    loop = asyncio.get_running_loop()
    ssl = tls_context(connection.tls) if connection.tls is not None else None
    async with asyncio.timeout(timeout_s):
        transport, _ = await loop.create_connection(
            lambda: link,
            connection.host,
            connection.port,
            ssl=ssl,
            server_hostname=connection.host if ssl is not None else None,
        )
        try:
            transport.write(connect)
            connack = await link.connack
        except BaseException:
            transport.abort()
            raise
    if not connack.accepted:
        link.abort("refused")
        raise BrokerRefusedError(f"the broker refused the connection: {connack.reason()}")
    link.start_keepalive(connack.server_keep_alive or connection.keepalive_s)
    return connack
