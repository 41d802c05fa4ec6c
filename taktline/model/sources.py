"""Data sources of the plant: OPC UA servers and MQTT brokers, mapped onto counters."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from taktline.model.base import ConfigPath, Slug, StrictModel
from taktline.model.connections import MqttConnection
from taktline.model.paths import CounterPath
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


TIMESTAMP_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
"""Epoch timestamp units in a JSON payload, as fractions of a second."""
TEMPLATE_LEVELS = ("site", "area", "line", "station", "counter")
"""The placeholders a topic template may name, one whole topic level each."""


class MqttPayload(StrictModel):
    """How to read one message: a plain number, JSON with paths, or one unit per message."""

    value: str | None = Field(
        default=None,
        description="Dotted path to the number in a JSON payload; absent: the payload is a number.",
    )
    each_message_counts: bool = Field(
        default=False,
        description="One message is one unit (an `increment` counter); the payload has no count.",
    )
    timestamp: str | None = Field(
        default=None, description="Dotted path to an ISO 8601 or epoch timestamp in the JSON."
    )
    timestamp_unit: Literal["s", "ms", "us", "ns"] = Field(
        default="ms", description="Unit of a numeric (epoch) timestamp."
    )
    message_id: str | None = Field(
        default=None,
        description="Dotted path to the message id (a string or integer); duplicates are dropped.",
    )

    @model_validator(mode="after")
    def _value_or_each(self) -> MqttPayload:
        if self.each_message_counts and self.value is not None:
            raise ValueError("give 'value' (a count in the payload) or 'each_message_counts'")
        return self

    @property
    def needs_json(self) -> bool:
        """True when the payload must be a JSON document."""
        return any(p is not None for p in (self.value, self.timestamp, self.message_id))


class MqttTopic(MqttPayload):
    """One row of a mapping table: a topic (or a filter with + and #) read as one counter."""

    topic: str
    counter: str = Field(description="Counter path: site/area/line/station/counter.")

    @field_validator("topic")
    @classmethod
    def _filter(cls, value: str) -> str:
        return check_topic_filter(value)


class MqttTemplate(MqttPayload):
    """A topic template: the asset path comes from the topic, e.g.
    `plant/{site}/{line}/{station}/{counter}` (+ and # match levels that are ignored).

    Levels the topic does not name are fixed here (`area: final`) or left open: they are
    then found in the plant (a line id is unique in the plant).
    """

    topic: str
    site: Slug | None = None
    area: Slug | None = None
    line: Slug | None = None
    station: Slug | None = None
    counter: Slug | None = None

    @field_validator("topic")
    @classmethod
    def _template(cls, value: str) -> str:
        names = [level[1:-1] for level in value.split("/") if level.startswith("{")]
        check_topic_filter(
            "/".join("+" if lvl.startswith("{") else lvl for lvl in value.split("/"))
        )
        for level in value.split("/"):
            if ("{" in level or "}" in level) and not re.fullmatch(r"\{[a-z]+\}", level):
                raise ValueError(f"'{level}': a placeholder is a whole level, e.g. {{station}}")
        unknown = [n for n in names if n not in TEMPLATE_LEVELS]
        if unknown:
            raise ValueError(f"unknown placeholder {{{unknown[0]}}}; use {TEMPLATE_LEVELS}")
        if len(set(names)) != len(names) or not names:
            raise ValueError("name each placeholder once, and at least one")
        return value

    @model_validator(mode="after")
    def _fixed_or_placeholder(self) -> MqttTemplate:
        both = [n for n in self.placeholders if getattr(self, n) is not None]
        if both:
            raise ValueError(f"'{both[0]}' is a placeholder of the topic and fixed too")
        return self

    @property
    def placeholders(self) -> list[str]:
        """The placeholder names in topic order."""
        return [lvl[1:-1] for lvl in self.topic.split("/") if lvl.startswith("{")]

    @property
    def subscription(self) -> str:
        """The topic filter to subscribe to (placeholders become +)."""
        return "/".join("+" if lvl.startswith("{") else lvl for lvl in self.topic.split("/"))

    def render(self, values: dict[str, str]) -> str:
        """The reading address for these placeholder values (+ and # stay as written)."""
        return "/".join(
            values[lvl[1:-1]] if lvl.startswith("{") else lvl for lvl in self.topic.split("/")
        )

    def accepts(self, levels: dict[str, str]) -> bool:
        """True when a counter's path levels agree with the fixed levels of this template."""
        return all(getattr(self, n) in (None, levels[n]) for n in TEMPLATE_LEVELS)


class SparkplugMetric(StrictModel):
    """One Sparkplug B metric (of an edge node, or of one of its devices) read as one counter."""

    node: str = Field(description="Edge node id.")
    device: str | None = Field(default=None, description="Device id; absent: a node metric.")
    metric: str = Field(description="Metric name as in the birth certificate.")
    counter: str = Field(description="Counter path: site/area/line/station/counter.")

    @field_validator("node", "device")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        return value if value is None else check_sparkplug_id(value)


class SparkplugSettings(StrictModel):
    """Sparkplug B (spBv1.0) edge nodes of one group whose metrics carry counters."""

    group: str = Field(description="Sparkplug group id.")
    metrics: list[SparkplugMetric] = Field(min_length=1)
    rebirth_interval_s: float = Field(
        default=10.0,
        gt=0,
        description="At most one rebirth request per node this often (until its birth comes).",
    )

    @field_validator("group")
    @classmethod
    def _id(cls, value: str) -> str:
        return check_sparkplug_id(value)


class MqttSource(StrictModel):
    """An MQTT broker on which devices publish counts (mapping tables, templates, Sparkplug B)."""

    type: Literal["mqtt"]
    id: Slug
    broker: MqttConnection = Field(default_factory=MqttConnection)
    qos: Literal[0, 1] = 1
    receive_maximum: int = Field(
        default=1000,
        ge=1,
        le=65535,
        description=(
            "QoS 1 messages the broker may have in flight to the edge, unacknowledged until in"
            " the outbox (MQTT 5 Receive Maximum; on 3.1.1 the broker's max_inflight_messages)."
        ),
    )
    dedupe_window: int = Field(
        default=10_000, ge=0, description="Message ids remembered per topic to drop duplicates."
    )
    max_payload_bytes: int = Field(default=64 * 1024, ge=16, le=16 * 1024 * 1024)
    topics: list[MqttTopic] = Field(default_factory=list, description="The mapping table.")
    templates: list[MqttTemplate] = Field(default_factory=list)
    sparkplug: SparkplugSettings | None = None

    @model_validator(mode="after")
    def _something(self) -> MqttSource:
        if not (self.topics or self.templates or self.sparkplug):
            raise ValueError("give 'topics', 'templates' or 'sparkplug' (or several)")
        return self

    def addresses(self, counters: Iterable[CounterPath]) -> list[tuple[str, str]]:
        """(reading address, counter path) of every mapping; templates are expanded over
        `counters` (the plant's) into the addresses their topics would produce."""
        found = [(t.topic, t.counter) for t in self.topics]
        paths = list(counters)
        for template in self.templates:
            for path in paths:
                levels = dict(zip(TEMPLATE_LEVELS, path.tags().values(), strict=True))
                if template.accepts(levels):
                    found.append((template.render(levels), str(path)))
        if self.sparkplug is not None:
            group = self.sparkplug.group
            found += [(sparkplug_address(group, m), m.counter) for m in self.sparkplug.metrics]
        return found


def sparkplug_address(group: str, metric: SparkplugMetric) -> str:
    """The reading address of a Sparkplug metric: `spBv1.0/group/node[/device]:metric`."""
    device = f"/{metric.device}" if metric.device is not None else ""
    return f"spBv1.0/{group}/{metric.node}{device}:{metric.metric}"


def check_topic_filter(value: str) -> str:
    """An MQTT topic filter: + a whole level, # the whole last level; else ValueError."""
    levels = value.split("/")
    if not value:
        raise ValueError("a topic is not empty")
    for index, level in enumerate(levels):
        if "+" in level and level != "+":
            raise ValueError(f"'{level}': + stands alone in its level")
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise ValueError("# stands alone in the last level")
    return value


def check_sparkplug_id(value: str) -> str:
    """A Sparkplug group, node or device id: no /, + or #."""
    if not value or any(c in value for c in "/+#"):
        raise ValueError(f"'{value}' is no Sparkplug id (non-empty, no /, + or #)")
    return value


Source = Annotated[OpcUaSource | MqttSource, Field(discriminator="type")]
