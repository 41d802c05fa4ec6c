"""The MQTT codec of the live bus and the collector: packets as the standard lays them out,
framing, and decoding PUBLISH packets from a stream."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taktline.mqttwire import (
    Frames,
    Inbound,
    Message,
    MqttProtocolError,
    Will,
    binary,
    connect_packet,
    parse_connack,
    parse_puback,
    parse_suback,
    puback_packet,
    publish_packet,
    publish_qos0_packet,
    suback_reason,
    subscribe_packet,
    varint,
)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_variable_byte_integers_match_the_standards_table(value: int, encoded: bytes) -> None:
    assert varint(value) == encoded


def test_a_variable_byte_integer_over_four_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        varint(268_435_456)


def test_connect_311_with_will_and_credentials() -> None:
    packet = connect_packet(
        "3.1.1", "edge-1", 30, will=Will("s", b"off"), username="u", password="p"
    )
    body = (
        b"\x00\x04MQTT\x04"
        + bytes([0x02 | 0x04 | 0x08 | 0x20 | 0x80 | 0x40])
        + b"\x00\x1e"
        + b"\x00\x06edge-1"
        + b"\x00\x01s\x00\x03off"
        + b"\x00\x01u\x00\x01p"
    )
    assert packet == b"\x10" + bytes([len(body)]) + body


def test_connect_5_carries_empty_properties_for_the_connection_and_the_will() -> None:
    packet = connect_packet("5", "e", 60, will=Will("s", b"x"))
    body = b"\x00\x04MQTT\x05\x2e\x00\x3c\x00" + b"\x00\x01e" + b"\x00" + b"\x00\x01s\x00\x01x"
    assert packet == b"\x10" + bytes([len(body)]) + body


def test_publish_qos1_retained_in_both_versions() -> None:
    topic = binary(b"a/b")
    assert publish_packet("3.1.1", topic, b"42", 7, retain=True) == (
        b"\x33\x09\x00\x03a/b\x00\x0742"
    )
    assert publish_packet("5", topic, b"42", 7, retain=False) == (
        b"\x32\x0a\x00\x03a/b\x00\x07\x0042"
    )


def test_a_long_publish_has_a_multi_byte_length() -> None:
    payload = b"x" * 300
    packet = publish_packet("3.1.1", binary(b"t"), payload, 1, retain=True)
    assert packet[1:3] == varint(3 + 2 + 300)
    assert packet.endswith(payload)


def test_connack_5_reads_receive_maximum_past_other_properties() -> None:
    properties = (
        b"\x26\x00\x01k\x00\x01v"  # user property
        + b"\x12\x00\x02id"  # assigned client identifier
        + b"\x21\x00\x14"  # receive maximum 20
        + b"\x13\x00\x3c"  # server keep alive 60
        + b"\x27\x00\x01\x00\x00"  # maximum packet size
    )
    ack = parse_connack("5", b"\x00\x00" + varint(len(properties)) + properties)
    assert (ack.accepted, ack.receive_maximum, ack.server_keep_alive) == (True, 20, 60)


def test_connack_refusals_are_named() -> None:
    assert parse_connack("3.1.1", b"\x00\x04").reason() == "bad user name or password"
    assert parse_connack("5", b"\x00\x87\x00").reason() == "not authorized"
    assert not parse_connack("5", b"\x00\x87\x00").accepted


def test_a_connack_with_an_unknown_property_is_a_protocol_error() -> None:
    with pytest.raises(MqttProtocolError, match="unknown MQTT 5 property"):
        parse_connack("5", b"\x00\x00\x02\x7e\x00")


def test_puback_with_and_without_a_reason_code() -> None:
    assert parse_puback(b"\x01\x02") == (258, 0)
    assert parse_puback(b"\x00\x05\x97") == (5, 0x97)


def test_frames_across_reads_and_several_in_one_read() -> None:
    frames = Frames()
    pubacks = b"\x40\x02\x00\x01" + b"\x40\x02\x00\x02"
    big = b"\x30" + varint(200) + bytes(200)
    stream = pubacks + big + b"\xd0\x00"
    assert frames.feed(stream[:3]) == []
    assert frames.feed(stream[3:7]) == [(0x40, b"\x00\x01")]
    assert frames.feed(stream[7:9]) == [(0x40, b"\x00\x02")]  # a split length: incomplete
    assert frames.feed(stream[9:]) == [(0x30, bytes(200)), (0xD0, b"")]


def test_a_packet_over_the_limit_is_refused() -> None:
    with pytest.raises(MqttProtocolError, match="over the limit"):
        Frames(max_packet=100).feed(b"\x30" + varint(101))


@given(
    st.lists(st.binary(max_size=300), max_size=20),
    st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=10),
)
def test_framing_does_not_depend_on_how_the_stream_is_cut(
    bodies: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(b"\x30" + varint(len(body)) + body for body in bodies)
    frames = Frames()
    received: list[bytes] = []
    at = 0
    step = 0
    while at < len(stream):
        size = cuts[step % len(cuts)]
        received += [body for _, body in frames.feed(stream[at : at + size])]
        at += size
        step += 1
    assert received == bodies


def test_connect_311_persistent_session_leaves_out_mqtt5_properties() -> None:
    packet = connect_packet("3.1.1", "c", 30, clean=False, session_expiry_s=60, receive_maximum=9)
    assert packet == b"\x10\x0d\x00\x04MQTT\x04\x00\x00\x1e\x00\x01c"


def test_connect_5_persistent_session_with_expiry_and_receive_maximum() -> None:
    packet = connect_packet(
        "5", "c", 30, username="u", clean=False, session_expiry_s=604_800, receive_maximum=1000
    )
    properties = b"\x11\x00\x09\x3a\x80" + b"\x21\x03\xe8"
    body = b"\x00\x04MQTT\x05\x80\x00\x1e\x08" + properties + b"\x00\x01c" + b"\x00\x01u"
    assert packet == b"\x10" + bytes([len(body)]) + body


def test_connack_session_present() -> None:
    assert parse_connack("3.1.1", b"\x01\x00").session_present
    assert not parse_connack("5", b"\x00\x00\x00").session_present


def test_subscribe_in_both_versions() -> None:
    filters = [("a/+", 1), ("b/#", 0)]
    assert subscribe_packet("3.1.1", 1, filters) == (
        b"\x82\x0e\x00\x01" + b"\x00\x03a/+\x01" + b"\x00\x03b/#\x00"
    )
    assert subscribe_packet("5", 1, filters) == (
        b"\x82\x0f\x00\x01\x00" + b"\x00\x03a/+\x01" + b"\x00\x03b/#\x00"
    )
    with pytest.raises(ValueError, match="at least one"):
        subscribe_packet("5", 1, [])


def test_suback_codes_past_mqtt5_properties() -> None:
    assert parse_suback("3.1.1", b"\x00\x01\x01\x80") == (1, [1, 0x80])
    reason = b"\x1f\x00\x02no"  # reason string
    assert parse_suback("5", b"\x00\x07\x05" + reason + b"\x00\x87") == (7, [0, 0x87])
    assert suback_reason(0x87) == "not authorized"
    assert suback_reason(1) == "granted QoS 1"
    with pytest.raises(MqttProtocolError):
        parse_suback("5", b"\x00\x01")


def test_puback_and_qos0_publish_encoding() -> None:
    assert puback_packet(258) == b"\x40\x02\x01\x02"
    assert parse_puback(puback_packet(65535)[2:]) == (65535, 0)
    assert publish_qos0_packet("3.1.1", binary(b"a"), b"xy") == b"\x30\x05\x00\x01axy"
    assert publish_qos0_packet("5", binary(b"a"), b"xy", retain=True) == (
        b"\x31\x06\x00\x01a\x00xy"
    )


def publish(
    first: int, topic: bytes, packet_id: int | None, properties: bytes | None, payload: bytes
) -> bytes:
    """A PUBLISH as a broker sends it (`properties` None: 3.1.1)."""
    body = binary(topic)
    if packet_id is not None:
        body += packet_id.to_bytes(2, "big")
    if properties is not None:
        body += varint(len(properties)) + properties
    return bytes([first]) + varint(len(body + payload)) + body + payload


def test_publish_decoding_at_qos_0_and_1_with_flags() -> None:
    stream = (
        publish(0x30, b"a/b", None, None, b"1")
        + publish(0x3B, b"c", 9, None, b"two")  # QoS 1, dup, retain
        + b"\xd0\x00"  # PINGRESP
    )
    messages, others = Inbound("3.1.1").feed(stream)
    assert messages == [
        Message("a/b", b"1", 0, 0, False, False),
        Message("c", b"two", 1, 9, True, True),
    ]
    assert others == [(0xD0, b"")]


def test_publish_decoding_skips_mqtt5_properties() -> None:
    properties = (
        b"\x01\x01"  # payload format indicator
        + b"\x02\x00\x00\x00\x3c"  # message expiry interval
        + b"\x0b\x80\x01"  # subscription identifier 128 (a variable byte integer)
        + b"\x08\x00\x01r"  # response topic
        + b"\x09\x00\x02\x01\x02"  # correlation data
        + b"\x26\x00\x01k\x00\x01v"  # user property
        + b"\x03\x00\x04json"  # content type
    )
    stream = publish(0x32, b"t", 5, properties, b"{}") + publish(0x30, b"u", None, b"", b"")
    messages, _ = Inbound("5").feed(stream)
    assert messages == [
        Message("t", b"{}", 1, 5, False, False),
        Message("u", b"", 0, 0, False, False),
    ]


def test_a_topic_that_is_not_utf8_is_decoded_with_replacement_characters() -> None:
    (message,), _ = Inbound("3.1.1").feed(publish(0x30, b"a/\xff", None, None, b"1"))
    assert message.topic == "a/\ufffd"


@pytest.mark.parametrize(
    ("version", "packet", "problem"),
    [
        ("5", publish(0x32, b"", 1, b"\x23\x00\x01", b"x"), "topic alias"),
        ("5", publish(0x32, b"t", 1, b"\x23\x00\x01", b"x"), "topic alias"),
        ("3.1.1", publish(0x30, b"", None, None, b"x"), "no topic"),
        ("3.1.1", publish(0x34, b"t", 1, None, b"x"), "QoS 2"),
        ("3.1.1", b"\x32\x03\x00\x05a", "shorter than its header"),
        ("3.1.1", b"\x32\x03\x00\x01a" + b"\xd0\x00", "header over its length"),
        ("5", publish(0x30, b"t", None, b"\x7e", b""), "unknown MQTT 5 property"),
    ],
)
def test_malformed_publish_packets_are_protocol_errors(
    version: str, packet: bytes, problem: str
) -> None:
    with pytest.raises(MqttProtocolError, match=problem):
        Inbound(version).feed(packet)  # type: ignore[arg-type]


def test_inbound_refuses_a_packet_over_its_limit() -> None:
    with pytest.raises(MqttProtocolError, match="over the limit"):
        Inbound("5", max_packet=150).feed(b"\x30" + varint(151))


topics = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=30)
messages = st.builds(
    Message,
    topic=topics,
    payload=st.binary(max_size=400),
    qos=st.sampled_from([0, 1]),
    packet_id=st.integers(min_value=1, max_value=65535),
    retain=st.booleans(),
    dup=st.booleans(),
)


@given(
    st.lists(messages, max_size=15),
    st.lists(st.integers(min_value=1, max_value=200), min_size=1, max_size=10),
    st.sampled_from(["3.1.1", "5"]),
)
def test_publish_decoding_does_not_depend_on_how_the_stream_is_cut(
    sent: list[Message], cuts: list[int], version: str
) -> None:
    sent = [m if m.qos else m._replace(packet_id=0, dup=False) for m in sent]
    stream = b"".join(
        publish(
            0x30 | m.qos << 1 | m.retain | m.dup << 3,
            m.topic.encode(),
            m.packet_id if m.qos else None,
            b"" if version == "5" else None,
            m.payload,
        )
        + b"\xd0\x00"
        for m in sent
    )
    inbound = Inbound(version)  # type: ignore[arg-type]
    received: list[Message] = []
    others = 0
    at = step = 0
    while at < len(stream):
        size = cuts[step % len(cuts)]
        got, other = inbound.feed(stream[at : at + size])
        received += got
        others += len(other)
        at += size
        step += 1
    assert received == sent
    assert others == len(sent)
