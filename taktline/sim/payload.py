"""MQTT payloads as a device would send them: JSON at the mapping's dotted paths, or a number."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from taktline.model.sources import MqttTopic


def iso_utc(moment: dt.datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a `Z`, e.g. 2026-11-26T09:47:01.941Z."""
    text = moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z"


def build_payload(mapping: MqttTopic, count: int, moment: dt.datetime) -> bytes:
    """The count at `mapping.value` and the time at `mapping.timestamp`; a plain number without
    a value path. Raises ValueError when the two paths collide (e.g. `a` and `a.b`)."""
    if mapping.value is None:
        return str(count).encode()
    body: dict[str, Any] = {}
    _put(body, mapping.value, count)
    if mapping.timestamp is not None:
        _put(body, mapping.timestamp, iso_utc(moment))
    return json.dumps(body, separators=(",", ":")).encode()


def _put(body: dict[str, Any], dotted: str, value: object) -> None:
    *parents, leaf = dotted.split(".")
    node = body
    for key in parents:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ValueError(f"JSON path '{dotted}' runs through the value at '{key}'")
        node = child
    if leaf in node:
        raise ValueError(f"JSON path '{dotted}' is already taken")
    node[leaf] = value
