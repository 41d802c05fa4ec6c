"""Random bytes and random JSON on every subscribed topic never raise out of the collector,
and a good message sent after them still arrives."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taktline.records import Reading
from tests.collectors.helpers import collect_until
from tests.collectors.mqtt.helpers import device, mqtt_source, running
from tests.fixtures.services import MosquittoService

SENTINEL = "fuzz/plain"
TOPICS = [
    SENTINEL,
    "fuzz/json",
    "fuzz/tmpl/eol/passed",
    "fuzz/tmpl/x/y",
    "spBv1.0/g1/NBIRTH/n1",
    "spBv1.0/g1/NDATA/n1",
    "spBv1.0/g1/DDATA/n1/d1",
    "spBv1.0/g1/NDEATH/n1",
]
MAPPINGS: dict[str, Any] = {
    "topics": [
        {"topic": SENTINEL, "counter": "s/a/l/st/plain"},
        {
            "topic": "fuzz/json",
            "counter": "s/a/l/st/json",
            "value": "count",
            "timestamp": "ts",
            "timestamp_unit": "us",
            "message_id": "id",
        },
    ],
    "templates": [
        {"topic": "fuzz/tmpl/{station}/{counter}", "each_message_counts": True, "message_id": "m.0"}
    ],
    "sparkplug": {
        "group": "g1",
        "rebirth_interval_s": 0.01,
        "metrics": [
            {"node": "n1", "metric": "m", "counter": "s/a/l/st/spb"},
            {"node": "n1", "device": "d1", "metric": "m", "counter": "s/a/l/st/spbd"},
        ],
    },
}

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
shaped = st.fixed_dictionaries(
    {}, optional={"count": documents, "ts": documents, "id": documents, "m": documents}
)
payloads = (
    st.binary(max_size=300)
    | documents.map(lambda d: json.dumps(d).encode())
    | shaped.map(lambda d: json.dumps(d).encode())
)
messages = st.lists(st.tuples(st.sampled_from(TOPICS), payloads), min_size=1, max_size=25)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=messages, qos=st.sampled_from([0, 1]))
def test_random_payloads_never_raise_out_of_the_collector(
    mosquitto: MosquittoService, batch: list[tuple[str, bytes]], qos: int
) -> None:
    asyncio.run(_scenario(mosquitto, batch, qos))


async def _scenario(mosquitto: MosquittoService, batch: list[tuple[str, bytes]], qos: int) -> None:
    source = mqtt_source(mosquitto, qos=qos, **MAPPINGS)
    sentinel = 7_000_000 + len(batch)
    async with running(source) as collector:
        async with device(mosquitto) as dev:
            for topic, payload in batch:
                await dev.publish(topic, payload, qos=qos)
            await dev.publish(SENTINEL, str(sentinel), qos=1)

        def arrived(seen: list[Any]) -> bool:
            collector.acknowledge([r.receipt for r in seen[-1:] if r.receipt is not None])
            last: Reading = seen[-1]
            return last.address == SENTINEL and last.value == sentinel

        await collect_until(collector.readings(), arrived)
        assert collector.health.connected
