"""MQTT payloads to counts: a plain number, JSON with the count, time and message id at dotted
paths, or one unit per message.

Everything a device sends is untrusted: each way a payload can be wrong is a `Rejection`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeGuard

from taktline.model.sources import TIMESTAMP_UNITS, MqttPayload

MAX_PAYLOAD_BYTES = 64 * 1024
"""The default `max_payload_bytes` of a source."""


class Rejection(StrEnum):
    """Why a message did not become a reading."""

    TOO_LARGE = "too_large"
    NOT_JSON = "not_json"
    NOT_A_NUMBER = "not_a_number"
    MISSING_PATH = "missing_path"
    WRONG_TYPE = "wrong_type"
    NEGATIVE = "negative"
    NOT_INTEGER = "not_integer"
    BAD_TIMESTAMP = "bad_timestamp"
    UNKNOWN_TOPIC = "unknown_topic"
    NOT_SPARKPLUG = "not_sparkplug"
    UNKNOWN_ALIAS = "unknown_alias"
    NO_BIRTH = "no_birth"


class PayloadError(ValueError):
    """A payload that is no valid count message."""

    def __init__(self, reason: Rejection, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Count:
    """What a valid payload carries."""

    value: int | None
    """The number (a total, or a quantity); None: the message is one unit."""
    ts: dt.datetime | None
    message_id: str | None = None


def parse(
    mapping: MqttPayload, payload: bytes | bytearray, max_bytes: int = MAX_PAYLOAD_BYTES
) -> Count:
    """The count (timestamp, message id) in `payload` as `mapping` describes it; raises
    PayloadError."""
    if len(payload) > max_bytes:
        raise PayloadError(Rejection.TOO_LARGE, f"{len(payload)} bytes > {max_bytes}")
    if mapping.each_message_counts and not mapping.needs_json:
        return Count(None, None)
    try:
        document = json.loads(payload.decode())  # str: json skips its encoding detection
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        reason = Rejection.NOT_JSON if mapping.needs_json else Rejection.NOT_A_NUMBER
        raise PayloadError(reason, "payload does not parse") from None
    if mapping.value is not None:
        count: int | None = _count(_number(_at(document, mapping.value), mapping.value))
    elif mapping.each_message_counts:
        count = None
    elif _is_number(document):
        count = _count(document)
    else:
        raise PayloadError(Rejection.NOT_A_NUMBER, f"payload is a {type(document).__name__}")
    ts = None
    if mapping.timestamp is not None:
        unit = TIMESTAMP_UNITS[mapping.timestamp_unit]
        ts = _timestamp(_at(document, mapping.timestamp), mapping.timestamp, unit)
    message_id = None
    if mapping.message_id is not None:
        message_id = _message_id(_at(document, mapping.message_id), mapping.message_id)
    return Count(count, ts, message_id)


def _number(value: object, path: str) -> int | float:
    if not _is_number(value):
        raise PayloadError(Rejection.WRONG_TYPE, f"{path} is a {type(value).__name__}")
    return value


def _message_id(value: object, path: str) -> str:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise PayloadError(Rejection.WRONG_TYPE, f"{path} is no message id (a string or integer)")


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _count(number: float) -> int:
    if isinstance(number, float):
        if not (math.isfinite(number) and number.is_integer()):
            raise PayloadError(Rejection.NOT_INTEGER, f"{number!r} is no whole number")
        number = int(number)
    if number < 0:
        raise PayloadError(Rejection.NEGATIVE, f"{number} < 0")
    return int(number)


def _at(document: object, path: str) -> object:
    """The value at a dotted path; digits index into lists ('items.0.count')."""
    node = document
    for key in path.split("."):
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            raise PayloadError(Rejection.MISSING_PATH, f"no {path!r} in payload")
    return node


def _timestamp(value: object, path: str, per_second: int) -> dt.datetime:
    """ISO 8601 (no offset: UTC) or an epoch number (`per_second` units a second), as an
    aware UTC datetime."""
    try:
        if isinstance(value, str):
            ts = dt.datetime.fromisoformat(value)
            return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)
        if _is_number(value):
            if isinstance(value, int) and per_second > 1:  # exact: no float rounding of ns
                seconds, rest = divmod(value, per_second)
                micros = rest * 1_000_000 // per_second
                return _EPOCH + dt.timedelta(seconds=seconds, microseconds=micros)
            return dt.datetime.fromtimestamp(value / per_second, dt.UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise PayloadError(Rejection.BAD_TIMESTAMP, f"{path} is no ISO 8601 time or epoch number")


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
