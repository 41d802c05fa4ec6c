"""Sparkplug B against a real Mosquitto: births, data by alias, rebirth on a seq gap, deaths."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import aiomqtt
import pytest

from collectors.mqtt.payload import Rejection
from collectors.mqtt.sparkplug.codec import decode, parse_topic
from collectors.mqtt.sparkplug.sparkplug_b_pb2 import Payload
from taktline.records import Quality, Reading
from tests.collectors.mqtt.helpers import device, mqtt_source, running, take
from tests.fixtures.services import MosquittoService

GROUP, NODE, DEVICE = "plant1", "eol-node", "tester1"
PASSED = f"spBv1.0/{GROUP}/{NODE}:Counts/Passed"
TESTED = f"spBv1.0/{GROUP}/{NODE}/{DEVICE}:Tested"
UINT64, INT32 = 8, 3
HISTORIC_MS = 1_795_686_062_123


def payload(seq: int | None, *metrics: dict[str, Any]) -> bytes:
    message = Payload(timestamp=1_795_686_000_000)
    if seq is not None:
        message.seq = seq
    for metric in metrics:
        message.metrics.add(**metric)
    return message.SerializeToString()


def nbirth(bd_seq: int, passed: int) -> bytes:
    return payload(
        0,
        {"name": "bdSeq", "datatype": UINT64, "long_value": bd_seq},
        {"name": "Node Control/Rebirth", "datatype": 11, "boolean_value": False},
        {"name": "Counts/Passed", "alias": 1, "datatype": UINT64, "long_value": passed},
        {"name": "Counts/Unmapped", "alias": 3, "datatype": UINT64, "long_value": 9},
    )


def topic(kind: str, with_device: bool = False) -> str:
    return f"spBv1.0/{GROUP}/{kind}/{NODE}" + (f"/{DEVICE}" if with_device else "")


async def test_birth_data_by_alias_rebirth_on_a_gap_and_death(
    mosquitto: MosquittoService,
) -> None:
    source = mqtt_source(
        mosquitto,
        sparkplug={
            "group": GROUP,
            "rebirth_interval_s": 0.0001,
            "metrics": [
                {"node": NODE, "metric": "Counts/Passed", "counter": "s/a/l/eol/passed"},
                {"node": NODE, "device": DEVICE, "metric": "Tested", "counter": "s/a/l/eol/t"},
            ],
        },
    )
    async with (
        running(source) as collector,
        device(mosquitto, "edge-node") as node,
    ):
        await node.subscribe(topic("NCMD"), qos=1)
        commands = aiter(node.messages)
        await node.publish(topic("NBIRTH"), nbirth(7, 100), qos=1)
        await node.publish(
            topic("DBIRTH", True),
            payload(1, {"name": "Tested", "alias": 2, "datatype": INT32, "int_value": 50}),
            qos=1,
        )
        await node.publish(topic("NDATA"), payload(2, {"alias": 1, "long_value": 101}), qos=1)
        historical = {"alias": 2, "int_value": 51, "is_historical": True, "timestamp": HISTORIC_MS}
        await node.publish(topic("DDATA", True), payload(3, historical), qos=1)
        born = await take(collector, 4)
        assert [(r.address, r.value) for r in born] == [
            (PASSED, 100),
            (TESTED, 50),
            (PASSED, 101),
            (TESTED, 51),
        ]
        assert born[3].source_ts == dt.datetime.fromtimestamp(HISTORIC_MS / 1000, dt.UTC)
        assert born[0].source_ts == dt.datetime.fromtimestamp(1_795_686_000, dt.UTC)

        # a forced gap: seq 4..6 never come; the data still counts, and a rebirth is asked for
        await node.publish(topic("NDATA"), payload(7, {"alias": 1, "long_value": 105}), qos=1)
        (gap,) = await take(collector, 1)
        assert (gap.address, gap.value) == (PASSED, 105)
        await assert_rebirth_request(commands)
        await node.publish(topic("NBIRTH"), nbirth(7, 105), qos=1)
        await node.publish(topic("NDATA"), payload(1, {"alias": 1, "long_value": 106}), qos=1)
        reborn = await take(collector, 2)
        assert [r.value for r in reborn] == [105, 106]
        # the rebirth dropped the device's aliases until its own birth: data is refused
        await node.publish(topic("DDATA", True), payload(2, {"alias": 2, "int_value": 52}), qos=1)
        await assert_rebirth_request(commands)
        # an alias no birth named asks for a rebirth too
        await node.publish(topic("NDATA"), payload(3, {"alias": 99, "long_value": 1}), qos=1)
        await assert_rebirth_request(commands)

        # an old death (another bdSeq) changes nothing; the matching one marks it stale
        death = {"name": "bdSeq", "datatype": UINT64, "long_value": 6}
        await node.publish(topic("NDEATH"), payload(None, death), qos=1)
        await node.publish(topic("NDEATH"), payload(None, death | {"long_value": 7}), qos=1)
        (stale,) = await take(collector, 1)
        assert (stale.address, stale.value, stale.quality) == (PASSED, None, Quality.BAD)

    stats = collector.sparkplug
    assert stats is not None
    assert (stats.births, stats.deaths, stats.seq_gaps, stats.rebirth_requests) == (3, 1, 1, 3)
    assert collector.health.rejected_by_reason == {
        Rejection.NO_BIRTH: 1,
        Rejection.UNKNOWN_ALIAS: 1,
    }


async def test_device_death_marks_its_metrics_stale(mosquitto: MosquittoService) -> None:
    source = mqtt_source(
        mosquitto,
        sparkplug={
            "group": GROUP,
            "metrics": [
                {"node": NODE, "device": DEVICE, "metric": "Tested", "counter": "s/a/l/eol/t"}
            ],
        },
    )
    async with running(source) as collector, device(mosquitto, "edge-node") as node:
        await node.publish(topic("NBIRTH"), nbirth(1, 0), qos=1)
        tested = {"name": "Tested", "alias": 2, "datatype": INT32, "int_value": 4}
        await node.publish(topic("DBIRTH", True), payload(1, tested), qos=1)
        await node.publish(topic("DDEATH", True), payload(2), qos=1)
        got: list[Reading] = await take(collector, 2)
    assert [(r.value, r.quality) for r in got] == [(4, Quality.GOOD), (None, Quality.BAD)]


@pytest.mark.parametrize(
    "text",
    ["spBv1.0/g/NDATA/n", "spBv1.0/g/DDATA/n/d", "spBv1.0/g/NBIRTH/n"],
)
def test_sparkplug_topics_parse(text: str) -> None:
    parsed = parse_topic(text)
    assert parsed is not None and parsed.group == "g" and parsed.node == "n"


@pytest.mark.parametrize(
    "text", ["spBv1.0/g/NDATA/n/d", "spBv1.0/g/DDATA/n", "spBv1.0/g/NCMD/n", "spBv1.0//NDATA/n"]
)
def test_other_topics_are_not_host_topics(text: str) -> None:
    assert parse_topic(text) is None


async def assert_rebirth_request(commands: object) -> None:
    assert hasattr(commands, "__anext__")
    async with asyncio.timeout(10):
        message: aiomqtt.Message = await commands.__anext__()
    assert isinstance(message.payload, bytes)
    (metric,) = decode(message.payload).metrics
    assert (metric.name, metric.boolean_value) == ("Node Control/Rebirth", True)
