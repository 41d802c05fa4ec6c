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


def test_epoch_units_and_message_ids() -> None:
    mapping = MqttTopic(
        topic="t",
        counter="s/a/l/st/c",
        value="n",
        timestamp="t",
        timestamp_unit="ns",
        message_id="id",
    )
    count = parse(mapping, b'{"n": 3, "t": 1795686062123456789, "id": 42}')
    assert count == Count(3, dt.datetime(2026, 11, 26, 9, 41, 2, 123456, tzinfo=dt.UTC), "42")


def test_each_message_is_one_unit_and_the_payload_may_be_anything() -> None:
    each = MqttTopic(topic="t", counter="s/a/l/st/c", each_message_counts=True)
    assert parse(each, b"\x00\xff anything") == Count(None, None)
    with_id = MqttTopic(topic="t", counter="s/a/l/st/c", each_message_counts=True, message_id="v")
    assert parse(with_id, b'{"v": "WVW123"}') == Count(None, None, "WVW123")


@pytest.mark.parametrize("message_id", [b"null", b"true", b'""', b"1.5", b"[1]"])
def test_a_message_id_is_a_string_or_an_integer(message_id: bytes) -> None:
    mapping = MqttTopic(topic="t", counter="s/a/l/st/c", value="n", message_id="id")
    with pytest.raises(PayloadError) as caught:
        parse(mapping, b'{"n": 1, "id": ' + message_id + b"}")
    assert caught.value.reason is Rejection.WRONG_TYPE


def test_value_and_each_message_counts_exclude_each_other() -> None:
    with pytest.raises(ValueError, match="each_message_counts"):
        MqttTopic(topic="t", counter="s/a/l/st/c", value="n", each_message_counts=True)


def test_a_deeply_nested_document_is_rejected_not_raised() -> None:
    with pytest.raises(PayloadError) as caught:
        parse(JSON, b"[" * 30_000 + b"]" * 30_000)
    assert caught.value.reason in (Rejection.NOT_JSON, Rejection.MISSING_PATH)
