"""Sparkplug B topics and payloads: parse a topic, decode a payload, read a metric's count."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from collectors.mqtt.payload import PayloadError, Rejection
from collectors.mqtt.sparkplug.sparkplug_b_pb2 import Payload

NAMESPACE = "spBv1.0"
BD_SEQ = "bdSeq"
REBIRTH = "Node Control/Rebirth"
BOOLEAN = 11
SIGNED_WIDTH = {1: 8, 2: 16, 3: 32, 4: 64}
"""Sparkplug datatypes Int8..Int64: sent as unsigned two's complement in int/long_value."""
SUBSCRIBED = ("NBIRTH", "NDEATH", "NDATA", "DBIRTH", "DDEATH", "DDATA")
"""The message types a host reads (not NCMD/DCMD/STATE, which hosts send)."""

Metric = Payload.Metric


@dataclass(frozen=True, slots=True)
class SparkplugTopic:
    """`spBv1.0/{group}/{kind}/{node}[/{device}]`."""

    group: str
    kind: str
    node: str
    device: str | None


def filters(group: str) -> list[str]:
    """The topic filters a host subscribes to for one group."""
    return [
        f"{NAMESPACE}/{group}/{kind}/+" + ("/+" if kind.startswith("D") else "")
        for kind in SUBSCRIBED
    ]


def parse_topic(topic: str) -> SparkplugTopic | None:
    """The parts of a Sparkplug topic, or None when it is none."""
    parts = topic.split("/")
    if len(parts) not in (4, 5) or parts[0] != NAMESPACE or not all(parts):
        return None
    device = parts[4] if len(parts) == 5 else None
    if parts[2] not in SUBSCRIBED or (device is None) == parts[2].startswith("D"):
        return None
    return SparkplugTopic(parts[1], parts[2], parts[3], device)


def decode(payload: bytes | bytearray) -> Payload:
    """The Sparkplug B payload; raises PayloadError(NOT_SPARKPLUG) when it does not parse."""
    try:
        return Payload.FromString(bytes(payload))
    except (DecodeError, RecursionError) as exc:
        raise PayloadError(Rejection.NOT_SPARKPLUG, f"invalid protobuf: {exc}") from None


def metric_count(metric: Metric) -> int | None:
    """A metric's value as a count (None when it is null); raises PayloadError."""
    if metric.is_null:
        return None
    kind = metric.WhichOneof("value")
    if kind in ("int_value", "long_value"):
        value = int(metric.int_value if kind == "int_value" else metric.long_value)
        width = SIGNED_WIDTH.get(metric.datatype)
        if width is not None and value >= 1 << (width - 1):
            value -= 1 << width
    elif kind in ("float_value", "double_value"):
        number = metric.float_value if kind == "float_value" else metric.double_value
        if not (math.isfinite(number) and number.is_integer()):
            raise PayloadError(Rejection.NOT_INTEGER, f"{metric.name or metric.alias}: {number}")
        value = int(number)
    else:
        raise PayloadError(Rejection.WRONG_TYPE, f"{metric.name or metric.alias} holds {kind}")
    if value < 0:
        raise PayloadError(Rejection.NEGATIVE, f"{metric.name or metric.alias}: {value} < 0")
    return value


def metric_ts(metric: Metric, payload: Payload) -> dt.datetime | None:
    """The metric's timestamp, else the payload's (epoch ms), else None."""
    ms = metric.timestamp if metric.HasField("timestamp") else None
    if ms is None and payload.HasField("timestamp"):
        ms = payload.timestamp
    if ms is None:
        return None
    try:
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    except (ValueError, OverflowError, OSError):
        raise PayloadError(Rejection.BAD_TIMESTAMP, f"{ms} is no epoch ms") from None


def bd_seq(payload: Payload) -> int | None:
    """The birth/death sequence number in an NBIRTH or NDEATH, if any."""
    for metric in payload.metrics:
        if metric.name == BD_SEQ:
            kind = metric.WhichOneof("value")
            if kind == "int_value":
                return int(metric.int_value)
            if kind == "long_value":
                return int(metric.long_value)
    return None


def rebirth_request(now: dt.datetime) -> bytes:
    """An NCMD payload asking an edge node to send its births again."""
    payload = Payload(timestamp=int(now.timestamp() * 1000))
    payload.metrics.add(name=REBIRTH, datatype=BOOLEAN, boolean_value=True)
    return payload.SerializeToString()
