"""The collector registry: which collector reads which type of source.

Each collector's module is imported only when a source of its type is configured: asyncua
alone costs an MQTT-only edge about 24 MB of memory.
"""

from __future__ import annotations

from pathlib import Path

from collectors.base import Collector
from taktline.model.sources import MqttSource, OpcUaSource, Source


def create_collector(source: Source, state_dir: Path | None = None) -> Collector:
    """The (unstarted) collector for `source`; use it as `async with`.

    `state_dir` is the edge's state folder: an OPC UA collector keeps its generated client
    certificate and its trusted server certificates under `pki/{source id}/` there.
    """
    match source:
        case OpcUaSource():
            from collectors.opcua import OpcUaCollector

            pki_dir = state_dir / "pki" / source.id if state_dir is not None else None
            return OpcUaCollector(source, pki_dir=pki_dir)
        case MqttSource():
            from collectors.mqtt import MqttCollector

            return MqttCollector(source)
