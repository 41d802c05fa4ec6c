"""relocate: the example plant's sources on free local ports."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from taktline.model import MqttSource, OpcUaSource, Plant
from taktline.sim import relocate


def test_each_opcua_source_gets_its_own_free_port_and_keeps_its_path(example_plant: Plant) -> None:
    moved = relocate(example_plant, mqtt_port=40_001)
    before = [s for s in example_plant.sources if isinstance(s, OpcUaSource)]
    after = [s for s in moved.sources if isinstance(s, OpcUaSource)]
    assert [s.id for s in after] == [s.id for s in before] == ["eol-fa1", "eol-fa2"]
    urls = [urlsplit(s.endpoint) for s in after]
    ports = [url.port for url in urls]
    assert len(set(ports)) == len(ports) == 2
    assert not {4840, 4841} & set(ports)
    assert [url.hostname for url in urls] == ["127.0.0.1", "127.0.0.1"]
    assert [url.path for url in urls] == ["/taktline/fa1", "/taktline/fa2"]
    assert [s.nodes for s in after] == [s.nodes for s in before]
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port or 0))  # still free: nothing else took it


def test_mqtt_sources_point_at_the_given_broker(example_plant: Plant) -> None:
    moved = relocate(example_plant, mqtt_port=40_002, host="127.0.0.2")
    (source,) = [s for s in moved.sources if isinstance(s, MqttSource)]
    assert (source.broker.host, source.broker.port) == ("127.0.0.2", 40_002)
    assert source.broker.client_id == "taktline-edge-paint"
    original = next(s for s in example_plant.sources if isinstance(s, MqttSource))
    assert source.topics == original.topics


def test_the_original_plant_is_unchanged(example_plant: Plant) -> None:
    relocate(example_plant, mqtt_port=40_003)
    endpoints = [s.endpoint for s in example_plant.sources if isinstance(s, OpcUaSource)]
    assert endpoints == [
        "opc.tcp://127.0.0.1:4840/taktline/fa1",
        "opc.tcp://127.0.0.1:4841/taktline/fa2",
    ]
