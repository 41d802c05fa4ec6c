"""The registry picks the collector by source type."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.mqtt import MqttCollector
from collectors.opcua import OpcUaCollector
from collectors.registry import create_collector
from taktline.model.sources import MqttSource, OpcUaSource


def test_each_source_type_gets_its_collector() -> None:
    opcua = OpcUaSource.model_validate(
        {
            "type": "opcua",
            "id": "eol-fa1",
            "endpoint": "opc.tcp://127.0.0.1:4840",
            "nodes": [{"node": "ns=2;s=A", "counter": "s/a/l/st/passed"}],
        }
    )
    mqtt = MqttSource.model_validate(
        {
            "type": "mqtt",
            "id": "paint",
            "topics": [{"topic": "a/b", "counter": "s/a/l/st/produced"}],
        }
    )
    opcua_collector = create_collector(opcua)
    mqtt_collector = create_collector(mqtt)
    assert isinstance(opcua_collector, OpcUaCollector)
    assert isinstance(mqtt_collector, MqttCollector)
    assert (opcua_collector.source_id, mqtt_collector.source_id) == ("eol-fa1", "paint")
    assert not opcua_collector.health.connected


def test_an_unreadable_client_certificate_fails_at_construction(tmp_path: Path) -> None:
    source = OpcUaSource.model_validate(
        {
            "type": "opcua",
            "id": "eol-fa1",
            "endpoint": "opc.tcp://127.0.0.1:4840",
            "security": {
                "policy": "Basic256Sha256",
                "mode": "SignAndEncrypt",
                "certificate": str(tmp_path / "missing-cert.der"),
                "private_key": str(tmp_path / "missing-key.pem"),
            },
            "nodes": [{"node": "ns=2;s=A", "counter": "s/a/l/st/passed"}],
        }
    )
    with pytest.raises(ValueError, match="cannot read certificate"):
        create_collector(source)
