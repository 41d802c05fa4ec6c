"""Payload parsing: plain numbers, JSON paths, timestamps, and every way to be wrong."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from collectors.mqtt.payload import MAX_PAYLOAD_BYTES, Count, PayloadError, Rejection, parse
from taktline.model.sources import MqttTopic

PLAIN = MqttTopic(topic="a/plain", counter="s/a/l/st/produced")
JSON = MqttTopic(topic="a/json", counter="s/a/l/st/produced", value="data.count", timestamp="ts")
TS = dt.datetime(2026, 11, 26, 9, 41, 2, 123000, tzinfo=dt.UTC)


@pytest.mark.parametrize("payload", [b"42", b" 42\n", b"42.0"])
def test_a_plain_payload_is_the_count(payload: bytes) -> None:
    assert parse(PLAIN, payload) == Count(42, None)


@pytest.mark.parametrize(
    "ts",
    [
        "2026-11-26T09:41:02.123Z",
        "2026-11-26T10:41:02.123+01:00",
        "2026-11-26T09:41:02.123",
        1_795_686_062_123,
    ],
)
def test_json_count_and_timestamp_at_their_paths(ts: object) -> None:
    payload = json.dumps({"data": {"count": 7}, "ts": ts}).encode()
    assert parse(JSON, payload) == Count(7, TS)


def test_list_indices_in_a_path() -> None:
    mapping = MqttTopic(topic="t", counter="s/a/l/st/c", value="items.1.n")
    assert parse(mapping, b'{"items": [{"n": 1}, {"n": 2}]}') == Count(2, None)


@pytest.mark.parametrize(
    ("mapping", "payload", "reason"),
    [
        (JSON, b"not json", Rejection.NOT_JSON),
        (JSON, b"\xff\xfe\xfa", Rejection.NOT_JSON),
        (PLAIN, b"forty-two", Rejection.NOT_A_NUMBER),
        (PLAIN, b'"42"', Rejection.NOT_A_NUMBER),
        (PLAIN, b"true", Rejection.NOT_A_NUMBER),
        (JSON, b'{"data": {}, "ts": 0}', Rejection.MISSING_PATH),
        (JSON, b'{"data": 5, "ts": 0}', Rejection.MISSING_PATH),
        (JSON, b'{"data": {"count": 7}}', Rejection.MISSING_PATH),
        (JSON, b'{"data": {"count": "7"}, "ts": 0}', Rejection.WRONG_TYPE),
        (JSON, b'{"data": {"count": null}, "ts": 0}', Rejection.WRONG_TYPE),
        (JSON, b'{"data": {"count": -1}, "ts": 0}', Rejection.NEGATIVE),
        (PLAIN, b"-5", Rejection.NEGATIVE),
        (PLAIN, b"2.5", Rejection.NOT_INTEGER),
        (PLAIN, b"NaN", Rejection.NOT_INTEGER),
        (JSON, b'{"data": {"count": 7}, "ts": "yesterday"}', Rejection.BAD_TIMESTAMP),
        (JSON, b'{"data": {"count": 7}, "ts": 1e300}', Rejection.BAD_TIMESTAMP),
        (JSON, b'{"data": {"count": 7}, "ts": true}', Rejection.BAD_TIMESTAMP),
        (PLAIN, b"1" * (MAX_PAYLOAD_BYTES + 1), Rejection.TOO_LARGE),
    ],
)
def test_each_bad_payload_names_its_reason(
    mapping: MqttTopic, payload: bytes, reason: Rejection
) -> None:
    with pytest.raises(PayloadError) as caught:
        parse(mapping, payload)
    assert caught.value.reason is reason
