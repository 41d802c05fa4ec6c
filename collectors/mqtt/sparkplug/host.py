"""What a Sparkplug B host application keeps per edge node: births, aliases, seq, deaths.

No I/O: `SparkplugHost.handle` takes one decoded message and says which mapped metrics it
carries, which mapped metrics went stale (a death), whether to ask the node for a rebirth
(NCMD `Node Control/Rebirth`: a seq gap, an unknown alias, data before a birth) and what was
wrong with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from collectors.mqtt.payload import Rejection
from collectors.mqtt.sparkplug.codec import Metric, SparkplugTopic, bd_seq
from collectors.mqtt.sparkplug.sparkplug_b_pb2 import Payload
from taktline.model.sources import SparkplugSettings, sparkplug_address

log = logging.getLogger(__name__)

Entity = tuple[str, str | None]
"""(node id, device id or None)."""


@dataclass(slots=True)
class _Node:
    born: bool = False
    bd_seq: int | None = None
    seq: int | None = None
    aliases: dict[Entity, dict[int, str]] = field(default_factory=dict)
    """Metric names by alias, for the node (device None) and each born device."""
    rebirth_at: float | None = None


@dataclass(slots=True)
class Outcome:
    """What one Sparkplug message means for the counters."""

    values: list[tuple[str, Metric]] = field(default_factory=list)
    """(reading address, metric) of every mapped metric in the message."""
    stale: list[str] = field(default_factory=list)
    """Reading addresses whose node or device died."""
    rebirth: bool = False
    problems: list[tuple[Rejection, str]] = field(default_factory=list)


@dataclass(slots=True)
class HostStats:
    """Counts for health and tests."""

    births: int = 0
    deaths: int = 0
    seq_gaps: int = 0
    rebirth_requests: int = 0


class SparkplugHost:
    """The state of every edge node of one group (see the module docstring)."""

    def __init__(self, settings: SparkplugSettings) -> None:
        self.group = settings.group
        self.stats = HostStats()
        self._interval_s = settings.rebirth_interval_s
        self._nodes: dict[str, _Node] = {}
        self._mapped: dict[Entity, dict[str, str]] = {}
        for metric in settings.metrics:
            names = self._mapped.setdefault((metric.node, metric.device), {})
            names[metric.metric] = sparkplug_address(self.group, metric)

    def online(self, node: str, device: str | None = None) -> bool:
        """True while the node (and the device, if given) is born and not dead."""
        state = self._nodes.get(node)
        return state is not None and state.born and (node, device) in state.aliases

    def handle(self, topic: SparkplugTopic, payload: Payload, now: float) -> Outcome:
        """Apply one message of this group received at monotonic time `now`."""
        node = self._nodes.setdefault(topic.node, _Node())
        entity = (topic.node, topic.device)
        out = Outcome()
        if topic.kind == "NBIRTH":
            self.stats.births += 1
            node.born, node.bd_seq, node.seq = True, bd_seq(payload), _seq(payload)
            node.aliases = {entity: _aliases(payload)}
            node.rebirth_at = None
            self._mapped_values(entity, payload, node, out)
        elif topic.kind == "NDEATH":
            death = bd_seq(payload)
            if node.born and (death is None or node.bd_seq is None or death == node.bd_seq):
                self.stats.deaths += 1
                out.stale = [a for e in node.aliases for a in self._addresses(e)]
                node.born, node.aliases = False, {}
        elif not node.born:
            out.problems.append((Rejection.NO_BIRTH, f"{topic.kind} before the node's birth"))
            out.rebirth = self._rebirth_due(node, now)
        else:
            self._check_seq(topic, payload, node, now, out)
            if topic.kind == "DBIRTH":
                self.stats.births += 1
                node.aliases[entity] = _aliases(payload)
                self._mapped_values(entity, payload, node, out)
            elif entity not in node.aliases:
                out.problems.append((Rejection.NO_BIRTH, f"{topic.kind} before its birth"))
                out.rebirth = self._rebirth_due(node, now) or out.rebirth
            elif topic.kind == "DDEATH":
                self.stats.deaths += 1
                out.stale = self._addresses(entity)
                node.aliases.pop(entity, None)
            else:  # NDATA, DDATA
                self._mapped_values(entity, payload, node, out, now)
        return out

    def _mapped_values(
        self,
        entity: Entity,
        payload: Payload,
        node: _Node,
        out: Outcome,
        now: float | None = None,
    ) -> None:
        names = self._mapped.get(entity, {})
        aliases = node.aliases.get(entity, {})
        for metric in payload.metrics:
            name = metric.name if metric.HasField("name") else aliases.get(metric.alias)
            if name is None:
                out.problems.append((Rejection.UNKNOWN_ALIAS, f"alias {metric.alias}"))
                if now is not None:
                    out.rebirth = self._rebirth_due(node, now) or out.rebirth
                continue
            address = names.get(name)
            if address is not None:
                out.values.append((address, metric))

    def _check_seq(
        self, topic: SparkplugTopic, payload: Payload, node: _Node, now: float, out: Outcome
    ) -> None:
        """Track the node's seq; a gap asks for a rebirth."""
        seq = _seq(payload)
        if seq is None:
            return
        if node.seq is not None and seq != (node.seq + 1) % 256:
            self.stats.seq_gaps += 1
            log.info(
                "sparkplug %s/%s: seq %d after %d (messages lost or reordered)",
                self.group,
                topic.node,
                seq,
                node.seq,
            )
            out.rebirth = self._rebirth_due(node, now) or out.rebirth
        node.seq = seq

    def _rebirth_due(self, node: _Node, now: float) -> bool:
        if node.rebirth_at is not None and now - node.rebirth_at < self._interval_s:
            return False
        node.rebirth_at = now
        self.stats.rebirth_requests += 1
        return True

    def _addresses(self, entity: Entity) -> list[str]:
        return list(self._mapped.get(entity, {}).values())


def _aliases(payload: Payload) -> dict[int, str]:
    return {m.alias: m.name for m in payload.metrics if m.HasField("alias") and m.name}


def _seq(payload: Payload) -> int | None:
    return int(payload.seq) if payload.HasField("seq") else None
