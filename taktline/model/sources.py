"""Data sources of the plant: OPC UA servers and MQTT brokers, mapped onto counters."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from taktline.model.base import ConfigPath, Slug, StrictModel
from taktline.model.connections import MqttConnection
from taktline.model.secrets import SecretRef


class OpcUaSecurity(StrictModel):
    """OPC UA message security. `None` is for test benches only."""

    policy: Literal["None", "Basic256Sha256"] = "None"
    mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: ConfigPath | None = Field(
        default=None, description="Client certificate (DER/PEM)."
    )
    private_key: ConfigPath | None = None
    server_certificate: ConfigPath | None = None


class OpcUaNode(StrictModel):
    """One node read as one counter."""

    node: str = Field(description="NodeId string, e.g. 'ns=2;s=FA1.EOL.Passed' or 'nsu=...;i=5'.")
    counter: str = Field(description="Counter path: site/area/line/station/counter.")


class OpcUaSource(StrictModel):
    """An OPC UA server (PLC, test stand) whose nodes carry counters."""

    type: Literal["opcua"]
    id: Slug
    endpoint: str
    username: str | None = None
    password: SecretRef | None = None
    security: OpcUaSecurity = Field(default_factory=OpcUaSecurity)
    publishing_interval_ms: int = Field(default=500, ge=10)
    sampling_interval_ms: int = Field(
        default=0, ge=0, description="0: the server reports every change (exception-based)."
    )
    queue_size: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Changes the server queues per node between publishes; default: enough for every"
            " sample of one publishing interval, so none is lost."
        ),
    )
    timestamp: Literal["source", "server"] = Field(
        default="source", description="Which OPC UA timestamp stamps the points."
    )
    nodes: list[OpcUaNode] = Field(min_length=1)

    @field_validator("endpoint")
    @classmethod
    def _opc_tcp(cls, value: str) -> str:
        if not value.startswith("opc.tcp://"):
            raise ValueError("an OPC UA endpoint starts with opc.tcp://")
        return value


class MqttTopic(StrictModel):
    """One MQTT topic read as one counter."""

    topic: str
    counter: str = Field(description="Counter path: site/area/line/station/counter.")
    value: str | None = Field(
        default=None,
        description="Dotted path to the count in a JSON payload; absent: the payload is a number.",
    )
    timestamp: str | None = Field(
        default=None, description="Dotted path to an ISO 8601 or epoch-ms timestamp in the JSON."
    )


class MqttSource(StrictModel):
    """An MQTT broker on which devices publish counts."""

    type: Literal["mqtt"]
    id: Slug
    broker: MqttConnection = Field(default_factory=MqttConnection)
    qos: Literal[0, 1] = 1
    topics: list[MqttTopic] = Field(min_length=1)


Source = Annotated[OpcUaSource | MqttSource, Field(discriminator="type")]
