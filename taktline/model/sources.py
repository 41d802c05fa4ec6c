"""Data sources of the plant: OPC UA servers and MQTT brokers, mapped onto counters."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from taktline.model.base import ConfigPath, Slug, StrictModel
from taktline.model.connections import MqttConnection
from taktline.model.secrets import SecretRef

NODE_ID = re.compile(
    r"^(?:ns=\d+;|nsu=[^;]+;)?(?:i=\d+|s=.+|g=[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}"
    r"|b=[A-Za-z0-9+/=]*)$"
)
"""OPC UA NodeId string syntax: optional `ns=`/`nsu=`, then `i=`, `s=`, `g=` or `b=`."""

SecurityPolicy = Literal["None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"]


class OpcUaSecurity(StrictModel):
    """OPC UA message security and trust. `None` is for test benches only.

    With a policy and no `certificate`/`private_key`, the edge generates a client certificate on
    first run and keeps it in its state folder (`pki/`). A server certificate is accepted when it
    is `server_certificate`, or is in `trust_list` (a folder of DER/PEM files); with
    `trust_on_first_use` the first one seen is stored there and only it is accepted after that.
    """

    policy: SecurityPolicy = "None"
    mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: ConfigPath | None = Field(default=None, description="Client certificate.")
    private_key: ConfigPath | None = None
    server_certificate: ConfigPath | None = None
    trust_list: ConfigPath | None = Field(
        default=None, description="Folder of trusted server certificates."
    )
    trust_on_first_use: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> OpcUaSecurity:
        if (self.policy == "None") != (self.mode == "None"):
            raise ValueError(
                "policy None goes with mode None, and a policy needs Sign or SignAndEncrypt"
            )
        if (self.certificate is None) != (self.private_key is None):
            raise ValueError("give both 'certificate' and 'private_key', or neither (generated)")
        return self


class OpcUaIdentity(StrictModel):
    """A user certificate identity (instead of anonymous or username/password)."""

    certificate: ConfigPath
    private_key: ConfigPath


class SubscriptionSettings(StrictModel):
    """How the server reports one group of nodes; every key is optional in a group."""

    publishing_interval_ms: int | None = Field(default=None, ge=10)
    sampling_interval_ms: int | None = Field(
        default=None, ge=0, description="0: the server reports every change (exception-based)."
    )
    queue_size: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Changes the server queues per node between publishes; default: enough for every"
            " sample of one publishing interval, so none is lost."
        ),
    )
    discard_oldest: bool | None = Field(
        default=None, description="When the queue is full, drop the oldest (else the newest)."
    )
    trigger: Literal["status", "status_value", "status_value_timestamp"] | None = None
    deadband: float | None = Field(
        default=None, ge=0, description="Absolute deadband: changes smaller than this are not sent."
    )


class OpcUaNode(StrictModel):
    """One node (or one element of an array node) read as one counter."""

    node: str | None = Field(
        default=None, description="NodeId string, e.g. 'ns=2;s=FA1.EOL.Passed' or 'nsu=URI;i=5'."
    )
    browse_path: str | None = Field(
        default=None,
        description="Resolved at connect: '/Objects/Line1/EOL/Passed' or with ns prefixes "
        "'/Objects/2:Line1/2:EOL/2:Passed'.",
    )
    counter: str = Field(description="Counter path: site/area/line/station/counter.")
    group: Slug | None = Field(default=None, description="A key of the source's `groups`.")
    index: int | None = Field(default=None, ge=0, description="Element of an array value.")
    count_edges: Literal["rising", "falling"] | None = Field(
        default=None,
        description="Boolean part-present bit: each edge is one unit (an `increment` counter).",
    )

    @model_validator(mode="after")
    def _one_address(self) -> OpcUaNode:
        if (self.node is None) == (self.browse_path is None):
            raise ValueError("give exactly one of 'node' or 'browse_path'")
        if self.node is not None and not NODE_ID.match(self.node):
            raise ValueError(
                f"'{self.node}' is not a NodeId: ns=<index>; or nsu=<uri>; then i=, s=, g= or b="
            )
        if self.browse_path is not None and not self.browse_path.startswith("/"):
            raise ValueError("a browse path starts with '/', e.g. /Objects/Line1/EOL/Passed")
        return self

    @property
    def address(self) -> str:
        """The node's address as configured (NodeId string or browse path), plus `[index]`."""
        base = self.node if self.node is not None else str(self.browse_path)
        return base if self.index is None else f"{base}[{self.index}]"


class OpcUaSource(SubscriptionSettings):
    """An OPC UA server (PLC, test stand) whose nodes carry counters.

    The subscription keys at this level are the defaults of every node; `groups` override them
    for the nodes that name the group.
    """

    type: Literal["opcua"]
    id: Slug
    endpoint: str
    mode: Literal["subscribe", "poll"] = Field(
        default="subscribe", description="`poll` for servers without subscriptions."
    )
    poll_interval_ms: int = Field(default=1000, ge=10)
    username: str | None = None
    password: SecretRef | None = None
    identity: OpcUaIdentity | None = None
    security: OpcUaSecurity = Field(default_factory=OpcUaSecurity)
    timestamp: Literal["source", "server"] = Field(
        default="source", description="Which OPC UA timestamp stamps the points."
    )
    extra_good_codes: list[str] = Field(
        default_factory=list,
        description="Status code names taken as good, e.g. UncertainLastUsableValue.",
    )
    groups: dict[Slug, SubscriptionSettings] = Field(default_factory=dict)
    nodes: list[OpcUaNode] = Field(min_length=1)

    @field_validator("endpoint")
    @classmethod
    def _opc_tcp(cls, value: str) -> str:
        if not value.startswith("opc.tcp://"):
            raise ValueError("an OPC UA endpoint starts with opc.tcp://")
        return value

    @model_validator(mode="after")
    def _identity(self) -> OpcUaSource:
        if self.identity is not None and self.username is not None:
            raise ValueError("give a username/password or a certificate identity, not both")
        if self.password is not None and self.username is None:
            raise ValueError("a password needs a username")
        return self

    def settings_for(self, node: OpcUaNode) -> ResolvedSubscription:
        """The node's subscription settings: its group's, else the source's, else defaults."""
        group = self.groups.get(node.group) if node.group else None

        def pick(name: str) -> Any:
            value = getattr(group, name) if group is not None else None
            return value if value is not None else getattr(self, name)

        return ResolvedSubscription(
            publishing_interval_ms=pick("publishing_interval_ms") or 500,
            sampling_interval_ms=pick("sampling_interval_ms") or 0,
            queue_size=pick("queue_size"),
            discard_oldest=pick("discard_oldest") is not False,
            trigger=pick("trigger") or "status_value",
            deadband=pick("deadband"),
        )


@dataclass(frozen=True, slots=True)
class ResolvedSubscription:
    """A node's effective subscription settings (nodes with equal ones share a subscription)."""

    publishing_interval_ms: int
    sampling_interval_ms: int
    queue_size: int | None
    discard_oldest: bool
    trigger: str
    deadband: float | None


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
