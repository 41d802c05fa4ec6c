"""OPC UA input: subscribe to mapped nodes of a PLC or test stand; see README.md."""

from collectors.opcua.collector import OpcUaCollector

__all__ = ["OpcUaCollector"]
