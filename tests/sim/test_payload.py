"""MQTT payloads: the count and the time at the mapping's dotted JSON paths."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from taktline.model import MqttTopic
from taktline.sim.payload import build_payload

MOMENT = dt.datetime(2026, 11, 26, 10, 47, 1, 941_289, tzinfo=dt.timezone(dt.timedelta(hours=1)))


def topic(value: str | None, timestamp: str | None = None) -> MqttTopic:
    return MqttTopic(topic="t", counter="s/a/l/st/c", value=value, timestamp=timestamp)


def test_count_and_utc_time_sit_at_their_dotted_paths() -> None:
    body = json.loads(build_payload(topic("data.count", "meta.ts"), 123, MOMENT))
    assert body == {"data": {"count": 123}, "meta": {"ts": "2026-11-26T09:47:01.941Z"}}
    parsed = dt.datetime.fromisoformat(body["meta"]["ts"])
    assert parsed == MOMENT.replace(microsecond=941_000)


def test_paths_can_share_a_parent() -> None:
    body = json.loads(build_payload(topic("d.count", "d.ts"), 7, MOMENT))
    assert body == {"d": {"count": 7, "ts": "2026-11-26T09:47:01.941Z"}}


def test_without_a_value_path_the_payload_is_the_number() -> None:
    assert build_payload(topic(None), 65_535, MOMENT) == b"65535"


def test_colliding_paths_are_refused() -> None:
    with pytest.raises(ValueError, match="runs through"):
        build_payload(topic("a", "a.ts"), 1, MOMENT)
    with pytest.raises(ValueError, match="already taken"):
        build_payload(topic("a", "a"), 1, MOMENT)
