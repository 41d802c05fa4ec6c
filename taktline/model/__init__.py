"""The plant model: one vocabulary for every part of taktline."""

from taktline.model.assets import Area, Counter, Line, Site, Station, Target
from taktline.model.connections import HttpListen, MqttConnection, TlsSettings
from taktline.model.milestones import Milestone
from taktline.model.paths import CounterPath
from taktline.model.plant import PlacedLine, Plant
from taktline.model.secrets import SecretError, SecretRef
from taktline.model.shifts import Break, Shift, ShiftCalendar
from taktline.model.sources import MqttSource, MqttTopic, OpcUaNode, OpcUaSecurity, OpcUaSource

__all__ = [
    "Area",
    "Break",
    "Counter",
    "CounterPath",
    "HttpListen",
    "Line",
    "Milestone",
    "MqttConnection",
    "MqttSource",
    "MqttTopic",
    "OpcUaNode",
    "OpcUaSecurity",
    "OpcUaSource",
    "PlacedLine",
    "Plant",
    "SecretError",
    "SecretRef",
    "Shift",
    "ShiftCalendar",
    "Site",
    "Station",
    "Target",
    "TlsSettings",
]
