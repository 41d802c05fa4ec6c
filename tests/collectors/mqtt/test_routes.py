"""Topic templates and mapping tables: the model, the router, and a real broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from collectors.mqtt.routes import Router
from taktline.config import ConfigError, load_plant
from taktline.model.paths import CounterPath
from taktline.model.sources import MqttSource, MqttTemplate
from tests.collectors.mqtt.helpers import device, mqtt_source, running, take
from tests.fixtures.services import MosquittoService

PLANT_COUNTERS = [
    CounterPath("neustadt", "final", "fa1", "eol", "passed"),
    CounterPath("neustadt", "final", "fa1", "eol", "failed"),
    CounterPath("neustadt", "paint", "paint1", "topcoat", "produced"),
    CounterPath("werk2", "final", "fa9", "eol", "passed"),
]


def source(**fields: object) -> MqttSource:
    return MqttSource.model_validate({"type": "mqtt", "id": "src"} | fields)


def test_a_template_expands_over_the_plant_into_the_addresses_it_produces() -> None:
    src = source(
        templates=[
            {"topic": "plant/{site}/+/{line}/{station}/{counter}/#", "area": "final"},
            {"topic": "paint/{line}/{counter}", "station": "topcoat"},
        ],
        topics=[{"topic": "legacy/x17", "counter": "neustadt/final/fa1/eol/passed"}],
    )
    assert sorted(src.addresses(PLANT_COUNTERS)) == sorted(
        [
            ("legacy/x17", "neustadt/final/fa1/eol/passed"),
            ("plant/neustadt/+/fa1/eol/passed/#", "neustadt/final/fa1/eol/passed"),
            ("plant/neustadt/+/fa1/eol/failed/#", "neustadt/final/fa1/eol/failed"),
            ("plant/werk2/+/fa9/eol/passed/#", "werk2/final/fa9/eol/passed"),
            ("paint/paint1/produced", "neustadt/paint/paint1/topcoat/produced"),
        ]
    )


def test_the_router_fills_placeholders_keeps_wildcards_and_prefers_the_table() -> None:
    router = Router(
        source(
            topics=[
                {"topic": "plant/neustadt/bay/fa1/eol/passed", "counter": "s/a/l/st/c"},
                {"topic": "legacy/+/count", "counter": "s/a/l/st/d", "value": "n"},
            ],
            templates=[
                {"topic": "plant/{site}/+/{line}/{station}/{counter}/#"},
                {"topic": "legacy/{station}/count"},  # shadowed by the table's filter
            ],
        )
    )
    assert router.subscriptions == [
        "plant/neustadt/bay/fa1/eol/passed",
        "legacy/+/count",
        "plant/+/+/+/+/+/#",
    ]
    route = router.route("plant/werk2/bay3/fa9/eol/failed/v2/json")
    assert route is not None and route.address == "plant/werk2/+/fa9/eol/failed/#"
    route = router.route("plant/werk2/bay3/fa9/eol/failed")  # '#' also matches nothing
    assert route is not None and route.address == "plant/werk2/+/fa9/eol/failed/#"
    route = router.route("plant/neustadt/bay/fa1/eol/passed")
    assert route is not None and route.address == "plant/neustadt/bay/fa1/eol/passed"
    route = router.route("legacy/x17/count")
    assert route is not None and route.address == "legacy/+/count"
    assert route.payload.value == "n"
    assert router.route("plant/werk2/bay3/fa9") is None
    assert router.route("plant//bay3/fa9/eol/x") is None  # an empty level names nothing
    assert router.route("elsewhere") is None


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("plant/{plant}/{counter}", "unknown placeholder"),
        ("plant/x{line}/{counter}", "whole level"),
        ("plant/{line}/{line}", "once"),
        ("plant/#/{counter}", "last level"),
        ("plant/fixed", "at least one"),
    ],
)
def test_bad_templates_are_config_errors(topic: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MqttTemplate(topic=topic)


def test_a_placeholder_that_is_fixed_too_is_an_error() -> None:
    with pytest.raises(ValidationError, match="placeholder of the topic and fixed"):
        MqttTemplate(topic="p/{line}/{counter}", line="fa1")


async def test_templates_and_table_over_a_broker(mosquitto: MosquittoService) -> None:
    src = mqtt_source(
        mosquitto,
        templates=[{"topic": "plant/{site}/{line}/{station}/{counter}", "value": "n"}],
        topics=[{"topic": "legacy/+/x17", "counter": "neustadt/final/fa1/eol/failed"}],
    )
    async with running(src) as collector:
        async with device(mosquitto) as dev:
            await dev.publish("plant/neustadt/fa1/eol/passed", json.dumps({"n": 5}), qos=1)
            await dev.publish("legacy/hall3/x17", b"9", qos=1)
            await dev.publish("plant/werk2/fa9/eol/passed", json.dumps({"n": 6}), qos=1)
        got = await take(collector, 3)
    assert [(r.address, r.value) for r in got] == [
        ("plant/neustadt/fa1/eol/passed", 5),
        ("legacy/+/x17", 9),
        ("plant/werk2/fa9/eol/passed", 6),
    ]


PLANT = """
name: P
sites:
  - id: s1
    name: S
    areas:
      - id: a1
        name: A
        lines:
          - id: l1
            name: L
            output: eol/passed
            target: {takt_seconds: 60}
            stations:
              - id: eol
                name: EOL
                counters: [{name: passed}, {name: failed}]
shift_calendars:
  default: {timezone: UTC, shifts: [{name: d, start: "06:00", end: "14:00"}]}
sources:
  - type: mqtt
    id: m
    templates:
      - {topic: "plant/{line}/{station}/{counter}"}
      - {topic: "other/{station}"}
      - {topic: "nothing/{counter}", site: elsewhere}
    sparkplug:
      group: g
      metrics:
        - {node: n, metric: x, counter: s1/a1/l1/eol/nope}
        - {node: n, metric: x, counter: s1/a1/l1/eol/passed}
"""


def test_check_config_names_every_mqtt_mapping_problem(tmp_path: Path) -> None:
    file = tmp_path / "plant.yaml"
    file.write_text(PLANT)
    with pytest.raises(ConfigError) as caught:
        load_plant(file)
    text = str(caught.value)
    assert "template 'nothing/{counter}' reaches no counter" in text
    assert "messages on 'other/eol' would count for both" in text
    assert "counter 'nope' does not exist" in text
    assert "'n/:x' is used twice" in text
    assert "mapped twice" in text  # passed: by the first template and by the metric
