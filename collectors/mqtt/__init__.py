"""MQTT input: mapped topics, topic templates and Sparkplug B nodes as Readings, acknowledged
after the edge's commit; see README.md."""

from collectors.mqtt.collector import MqttCollector

__all__ = ["MqttCollector"]
