"""MQTT payloads to counts: a plain number, or JSON with the count (and a time) at dotted paths.

Everything a device sends is untrusted: each way a payload can be wrong is a `Rejection`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeGuard

from taktline.model.sources import MqttTopic

MAX_PAYLOAD_BYTES = 64 * 1024


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


class PayloadError(ValueError):
    """A payload that is no valid count message."""

    def __init__(self, reason: Rejection, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Count:
    """What a valid payload carries."""

    value: int
    ts: dt.datetime | None


def parse(mapping: MqttTopic, payload: bytes) -> Count:
    """The count (and timestamp) in `payload` as `mapping` describes it; raises PayloadError."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(Rejection.TOO_LARGE, f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        reason = Rejection.NOT_A_NUMBER if mapping.value is None else Rejection.NOT_JSON
        raise PayloadError(reason, "payload does not parse") from None
    if mapping.value is None:
        if not _is_number(document):
            raise PayloadError(Rejection.NOT_A_NUMBER, f"payload is a {type(document).__name__}")
        return Count(_count(document), None)
    value = _at(document, mapping.value)
    if not _is_number(value):
        raise PayloadError(Rejection.WRONG_TYPE, f"{mapping.value} is a {type(value).__name__}")
    count = _count(value)
    if mapping.timestamp is None:
        return Count(count, None)
    return Count(count, _timestamp(_at(document, mapping.timestamp), mapping.timestamp))


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


def _timestamp(value: object, path: str) -> dt.datetime:
    """ISO 8601 (no offset: UTC) or epoch milliseconds, as an aware UTC datetime."""
    try:
        if isinstance(value, str):
            ts = dt.datetime.fromisoformat(value)
            return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)
        if _is_number(value):
            return dt.datetime.fromtimestamp(value / 1000, dt.UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise PayloadError(Rejection.BAD_TIMESTAMP, f"{path} is no ISO 8601 time or epoch ms")
