"""MQTT input: count messages on mapped topics (plain numbers or JSON); see README.md."""

from collectors.mqtt.collector import MqttCollector

__all__ = ["MqttCollector"]
