"""The collector registry: which collector reads which type of source."""

from __future__ import annotations

from collectors.base import Collector
from collectors.mqtt import MqttCollector
from collectors.opcua import OpcUaCollector
from taktline.model.sources import MqttSource, OpcUaSource, Source


def create_collector(source: Source) -> Collector:
    """The (unstarted) collector for `source`; use it as `async with`."""
    match source:
        case OpcUaSource():
            return OpcUaCollector(source)
        case MqttSource():
            return MqttCollector(source)
