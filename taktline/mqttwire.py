"""The few MQTT 3.1.1 / 5 packets a publisher and a subscriber need, as bytes; no I/O.

Why our own codec: paho-mqtt spends 40-55 µs of CPU per QoS 1 publish and its PUBACK (a message
object, a threading.Condition and a ReasonCode per message), which made the live bus the
largest cost of an edge at 10,000 counter updates per second (see bench/README.md). Encoding a
PUBLISH here is a few byte concatenations, and a read of many PUBACKs is one loop.

The MQTT collector's subscriber had the same problem on the way in (paho: about 30 µs per
received message); `Inbound` splits the stream and decodes every PUBLISH of one read in one loop.

Covered: CONNECT (clean or persistent session, keepalive, will, username/password, MQTT 5 Session
Expiry Interval and Receive Maximum), CONNACK (session present, MQTT 5 Receive Maximum and Server
Keep Alive), PUBLISH at QoS 0 and 1 (both ways), PUBACK (both ways), SUBSCRIBE/SUBACK,
PINGREQ/PINGRESP, DISCONNECT. Anything else the broker sends is framed and handed over by type,
for the caller to refuse. Topic aliases are not supported: a client that announces no Topic Alias
Maximum gets none, and one that arrives anyway is a protocol error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal, NamedTuple

MqttVersion = Literal["3.1.1", "5"]


class PacketType(IntEnum):
    """MQTT control packet types (the high nibble of the first byte)."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    SUBSCRIBE = 8
    SUBACK = 9
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


class MqttProtocolError(ValueError):
    """The broker sent bytes that are not the MQTT this codec speaks."""


PINGREQ = bytes((PacketType.PINGREQ << 4, 0))
_DISCONNECT_311 = bytes((PacketType.DISCONNECT << 4, 0))
_DISCONNECT_5 = bytes((PacketType.DISCONNECT << 4, 1, 0))  # reason: normal disconnection
_PUBLISH_QOS0 = PacketType.PUBLISH << 4
_PUBLISH_QOS1 = (PacketType.PUBLISH << 4) | 0x02
_SUBSCRIBE = (PacketType.SUBSCRIBE << 4) | 0x02
_PUBACK_HEADER = (PacketType.PUBACK << 28) | (2 << 16)
_RETAIN = 0x01
MAX_PACKET = 268_435_455
"""The largest remaining length MQTT can express."""
_MAX_REMAINING = MAX_PACKET
_PROPERTY_SIZES = {  # MQTT 5 properties with a fixed size
    0x01: 1, 0x02: 4, 0x11: 4, 0x13: 2, 0x17: 1, 0x19: 1, 0x21: 2, 0x22: 2,
    0x23: 2, 0x24: 1, 0x25: 1, 0x27: 4, 0x28: 1, 0x29: 1, 0x2A: 1,
}  # fmt: skip
_STRING_PROPERTIES = {0x03, 0x08, 0x09, 0x12, 0x15, 0x16, 0x1A, 0x1C, 0x1F}
_USER_PROPERTY = 0x26
_SUBSCRIPTION_IDENTIFIER = 0x0B  # a variable byte integer
_RECEIVE_MAXIMUM = 0x21
_SERVER_KEEP_ALIVE = 0x13
_SESSION_EXPIRY = 0x11
_TOPIC_ALIAS = 0x23


def varint(value: int) -> bytes:
    """MQTT's variable byte integer (remaining length, property length)."""
    if not 0 <= value <= _MAX_REMAINING:
        raise ValueError(f"{value} does not fit an MQTT variable byte integer")
    out = bytearray()
    while True:
        value, digit = divmod(value, 128)
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def utf8(text: str) -> bytes:
    """A length-prefixed UTF-8 string."""
    return binary(text.encode("utf-8"))


def binary(data: bytes) -> bytes:
    """Length-prefixed binary data."""
    if len(data) > 0xFFFF:
        raise ValueError("an MQTT string or binary field holds at most 65,535 bytes")
    return len(data).to_bytes(2, "big") + data


@dataclass(frozen=True, slots=True)
class Will:
    """The last will: published retained at QoS 1 by the broker when the connection dies."""

    topic: str
    payload: bytes


def connect_packet(
    version: MqttVersion,
    client_id: str,
    keepalive_s: int,
    *,
    will: Will | None = None,
    username: str | None = None,
    password: str | None = None,
    clean: bool = True,
    session_expiry_s: int | None = None,
    receive_maximum: int | None = None,
) -> bytes:
    """CONNECT; by default with a clean session (3.1.1) / clean start and no session expiry (5).

    `clean=False` resumes the session kept under `client_id`. MQTT 5 only (left out on 3.1.1):
    `session_expiry_s`, how long the broker keeps the session after the connection ends, and
    `receive_maximum`, how many QoS 1 messages it may send before they are acknowledged.
    """
    v5 = version == "5"
    flags = 0x02 if clean else 0x00  # clean session / clean start
    payload = utf8(client_id)
    if will is not None:
        flags |= 0x04 | 0x08 | 0x20  # will, will QoS 1, will retain
        payload += (b"\x00" if v5 else b"") + utf8(will.topic) + binary(will.payload)
    if username is not None:
        flags |= 0x80
        payload += utf8(username)
    if password is not None:
        flags |= 0x40
        payload += binary(password.encode("utf-8"))
    header = utf8("MQTT") + bytes((5 if v5 else 4, flags)) + keepalive_s.to_bytes(2, "big")
    if v5:
        properties = b""
        if session_expiry_s is not None:
            properties += bytes((_SESSION_EXPIRY,)) + session_expiry_s.to_bytes(4, "big")
        if receive_maximum is not None:
            properties += bytes((_RECEIVE_MAXIMUM,)) + receive_maximum.to_bytes(2, "big")
        header += varint(len(properties)) + properties
    return _packet(PacketType.CONNECT << 4, header + payload)


def publish_packet(
    version: MqttVersion, topic: bytes, payload: bytes, packet_id: int, *, retain: bool
) -> bytes:
    """PUBLISH at QoS 1; `topic` is length-prefixed already (see `binary`)."""
    properties = b"\x00" if version == "5" else b""
    size = len(topic) + 2 + len(properties) + len(payload)
    first = _PUBLISH_QOS1 | (_RETAIN if retain else 0)
    if size < 0x80:
        head = bytes((first, size))
    elif size < 0x4000:  # the usual live-bus message: two length bytes, made here
        head = bytes((first, size & 0x7F | 0x80, size >> 7))
    else:
        head = bytes((first,)) + varint(size)
    return b"".join((head, topic, packet_id.to_bytes(2, "big"), properties, payload))


def publish_qos0_packet(
    version: MqttVersion, topic: bytes, payload: bytes, *, retain: bool = False
) -> bytes:
    """PUBLISH at QoS 0; `topic` is length-prefixed already (see `binary`)."""
    properties = b"\x00" if version == "5" else b""
    return _packet(_PUBLISH_QOS0 | (_RETAIN if retain else 0), topic + properties + payload)


def puback_packet(packet_id: int) -> bytes:
    """PUBACK of a received QoS 1 PUBLISH (success; the same bytes in 3.1.1 and 5)."""
    return (_PUBACK_HEADER | packet_id).to_bytes(4, "big")


def subscribe_packet(
    version: MqttVersion, packet_id: int, filters: Sequence[tuple[str, int]]
) -> bytes:
    """SUBSCRIBE to (topic filter, maximum QoS) pairs; MQTT 5 options are left at 0."""
    if not filters:
        raise ValueError("SUBSCRIBE needs at least one topic filter")
    body = packet_id.to_bytes(2, "big") + (b"\x00" if version == "5" else b"")
    body += b"".join(utf8(topic) + bytes((qos,)) for topic, qos in filters)
    return _packet(_SUBSCRIBE, body)


def disconnect_packet(version: MqttVersion) -> bytes:
    """A normal DISCONNECT (the broker discards the will)."""
    return _DISCONNECT_5 if version == "5" else _DISCONNECT_311


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes((first_byte,)) + varint(len(body)) + body


@dataclass(frozen=True, slots=True)
class ConnAck:
    """What the broker answered to CONNECT."""

    code: int
    """0 = accepted; otherwise the 3.1.1 return code or the MQTT 5 reason code."""
    receive_maximum: int | None = None
    server_keep_alive: int | None = None
    session_present: bool = False
    """The broker resumed the session kept under the client id (never with a clean start)."""

    @property
    def accepted(self) -> bool:
        """Whether the connection was accepted."""
        return self.code == 0

    def reason(self) -> str:
        """The refusal in words."""
        return _CONNACK_REASONS.get(self.code, f"reason code {self.code:#04x}")


_CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
    0x80: "unspecified error",
    0x84: "unsupported protocol version",
    0x85: "client identifier not valid",
    0x86: "bad user name or password",
    0x87: "not authorized",
    0x88: "server unavailable",
    0x89: "server busy",
    0x8A: "banned",
    0x8C: "bad authentication method",
    0x95: "packet too large",
    0x97: "quota exceeded",
    0x9A: "retain not supported",
    0x9B: "QoS not supported",
    0x9F: "connection rate exceeded",
}


def parse_connack(version: MqttVersion, body: bytes) -> ConnAck:
    """Decode a CONNACK body."""
    if len(body) < 2:
        raise MqttProtocolError("CONNACK shorter than 2 bytes")
    code = body[1]
    present = body[0] & 0x01 == 0x01
    if version != "5" or len(body) == 2:
        return ConnAck(code, session_present=present)
    properties, _ = _properties(body, 2)
    receive_maximum = properties.get(_RECEIVE_MAXIMUM)
    keep_alive = properties.get(_SERVER_KEEP_ALIVE)
    return ConnAck(code, receive_maximum, keep_alive, present)


def parse_puback(body: bytes) -> tuple[int, int]:
    """(packet id, reason code) of a PUBACK body; reason 0 on 3.1.1 or when left out."""
    if len(body) < 2:
        raise MqttProtocolError("PUBACK shorter than 2 bytes")
    return (body[0] << 8) | body[1], body[2] if len(body) > 2 else 0


def parse_suback(version: MqttVersion, body: bytes) -> tuple[int, list[int]]:
    """(packet id, one return / reason code per filter) of a SUBACK body: 0 to 2 is the granted
    QoS, 0x80 and above a refusal (see `suback_reason`)."""
    if len(body) < 3:
        raise MqttProtocolError("SUBACK shorter than 3 bytes")
    at = 2
    if version == "5":
        _, at = _properties(body, 2)
    return (body[0] << 8) | body[1], list(body[at:])


def suback_reason(code: int) -> str:
    """A SUBACK code in words."""
    if code < 0x80:
        return f"granted QoS {code}"
    return _SUBACK_REASONS.get(code, f"reason code {code:#04x}")


_SUBACK_REASONS = {
    0x80: "unspecified error",
    0x83: "implementation specific error",
    0x87: "not authorized",
    0x8F: "topic filter invalid",
    0x91: "packet identifier in use",
    0x97: "quota exceeded",
    0x9E: "shared subscriptions not supported",
    0xA1: "subscription identifiers not supported",
    0xA2: "wildcard subscriptions not supported",
}


def _properties(body: bytes, at: int) -> tuple[dict[int, int], int]:
    """The integer properties of an MQTT 5 property list starting at `at` (others skipped),
    and where the list ends."""
    try:
        length, at = _read_varint(body, at)
    except IndexError:
        raise MqttProtocolError("MQTT 5 property length cut short") from None
    end = at + length
    if end > len(body):
        raise MqttProtocolError("MQTT 5 properties overrun the packet")
    found: dict[int, int] = {}
    while at < end:
        identifier = body[at]
        at += 1
        if identifier in _PROPERTY_SIZES:
            size = _PROPERTY_SIZES[identifier]
            found[identifier] = int.from_bytes(body[at : at + size], "big")
            at += size
        elif identifier in _STRING_PROPERTIES:
            at += 2 + int.from_bytes(body[at : at + 2], "big")
        elif identifier == _USER_PROPERTY:
            for _ in range(2):
                at += 2 + int.from_bytes(body[at : at + 2], "big")
        elif identifier == _SUBSCRIPTION_IDENTIFIER:
            try:
                found[identifier], at = _read_varint(body, at)
            except IndexError:
                raise MqttProtocolError("MQTT 5 property cut short") from None
        else:
            raise MqttProtocolError(f"unknown MQTT 5 property {identifier:#04x}")
    if at != end:
        raise MqttProtocolError("MQTT 5 properties overrun their length")
    return found, end


def _read_varint(data: bytes | bytearray, at: int) -> tuple[int, int]:
    """(value, the position after it); IndexError when the data ends inside it."""
    value = 0
    for shift in range(0, 28, 7):
        if at >= len(data):
            raise IndexError("incomplete variable byte integer")
        digit = data[at]
        at += 1
        value |= (digit & 0x7F) << shift
        if not digit & 0x80:
            return value, at
    raise MqttProtocolError("variable byte integer longer than 4 bytes")


class Frames:
    """Splits the byte stream from the broker into packets: `feed` bytes, get whole packets."""

    def __init__(self, max_packet: int = 1 << 20) -> None:
        self._buffer = bytearray()
        self._max_packet = max_packet

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The packets completed by `data`: (first byte, body), in order."""
        buffer = self._buffer
        buffer += data
        packets: list[tuple[int, bytes]] = []
        at = 0
        size = len(buffer)
        while size - at >= 2:
            second = buffer[at + 1]
            if second < 0x80:  # the common case: a body under 128 bytes (every PUBACK)
                length, start = second, at + 2
            else:
                try:
                    length, start = _read_varint(buffer, at + 1)
                except IndexError:
                    break
            if length > self._max_packet:
                raise MqttProtocolError(f"a packet of {length} bytes is over the limit")
            end = start + length
            if end > size:
                break
            packets.append((buffer[at], bytes(buffer[start:end])))
            at = end
        del buffer[:at]
        return packets


class Message(NamedTuple):
    """A PUBLISH from the broker (a tuple: cheap to make many of)."""

    topic: str
    """Decoded as UTF-8; a byte that is not (a broker should refuse those) becomes U+FFFD."""
    payload: bytes
    qos: int
    packet_id: int
    """0 at QoS 0."""
    retain: bool
    dup: bool


class Inbound:
    """The subscriber's side of the stream from the broker: `feed` the bytes of one read, get
    every PUBLISH it completed decoded as a `Message`, and the other packets as (first byte,
    body), each in order.

    A PUBLISH at QoS 2, with a topic alias or with properties this codec does not know is a
    `MqttProtocolError`, as is a packet over `max_packet` bytes (one under 128 always passes).
    """

    def __init__(self, version: MqttVersion, max_packet: int = MAX_PACKET) -> None:
        self._v5 = version == "5"
        self._max_packet = max_packet
        self._rest = bytearray()
        self._needed = 0
        """The length `_rest` must reach before it can hold a whole packet."""

    def feed(self, data: bytes) -> tuple[list[Message], list[tuple[int, bytes]]]:
        """The messages and other packets completed by `data`."""
        messages: list[Message] = []
        others: list[tuple[int, bytes]] = []
        if self._rest:
            self._rest += data
            if len(self._rest) < self._needed:
                return messages, others
            data = bytes(self._rest)
            self._rest.clear()
        size = len(data)
        at = end = 0
        try:
            while size - at >= 2:
                first = data[at]
                if data[at + 1] < 0x80:  # the common case: a packet under 130 bytes
                    start = at + 2
                    end = start + data[at + 1]
                else:
                    start, end = self._long_packet(data, at)
                if end > size:
                    break
                if first >> 4 == PacketType.PUBLISH:
                    messages.append(self._publish(data, first, start, end))
                else:
                    others.append((first, data[start:end]))
                at = end
        except IndexError:
            raise MqttProtocolError("a PUBLISH shorter than its header") from None
        if at < size:
            self._rest += memoryview(data)[at:]
            self._needed = max(end - at, 2)
        return messages, others

    def _long_packet(self, data: bytes, at: int) -> tuple[int, int]:
        """(start, end) of the body of a packet whose remaining length takes 2 to 4 bytes; an
        end past `data` when it ends inside the length."""
        try:
            length, start = _read_varint(data, at + 1)
        except IndexError:
            return at, len(data) + 1
        if length > self._max_packet:
            raise MqttProtocolError(f"a packet of {length} bytes is over the limit")
        return start, start + length

    def _publish(self, data: bytes, first: int, start: int, end: int) -> Message:
        topic_end = start + 2 + ((data[start] << 8) | data[start + 1])
        at = topic_end
        qos = (first >> 1) & 0x03
        packet_id = 0
        if qos == 1:
            packet_id = (data[at] << 8) | data[at + 1]
            at += 2
        elif qos:
            raise MqttProtocolError(f"a PUBLISH at QoS {qos}: this client subscribes at 0 or 1")
        if self._v5:
            if data[at] == 0:
                at += 1
            else:
                properties, at = _properties(data, at)
                if _TOPIC_ALIAS in properties:
                    raise MqttProtocolError("a topic alias, though none was allowed")
        if at > end or topic_end == start + 2:
            raise MqttProtocolError("a PUBLISH with no topic, or a header over its length")
        topic = data[start + 2 : topic_end].decode("utf-8", "replace")
        return Message(topic, data[at:end], qos, packet_id, first & 1 == 1, first & 8 == 8)
