"""The edge's health snapshot: sources, outbox, sinks and counter decisions, as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from collectors.base import SourceHealth
from edge.sinks.base import SinkHealth


@dataclass(frozen=True, slots=True)
class SinkStatus:
    """A sink's health with its backlog in the outbox."""

    health: SinkHealth
    depth: int
    oldest_pending_age_s: float | None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        body = asdict(self.health)
        body.pop("oldest_pending_ns")
        return body | {"depth": self.depth, "oldest_pending_age_s": self.oldest_pending_age_s}


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """Everything `/healthz` and `/metrics` report, taken at one moment."""

    edge_id: str
    sources: list[SourceHealth]
    sinks: list[SinkStatus]
    outbox_undelivered: int
    outbox_max_records: int
    outbox_full: bool
    outbox_dropped: int
    """Updates dropped undelivered since start (`when_full: drop_oldest`)."""
    decisions: dict[str, dict[str, int]]
    totals: dict[str, int | None]
    unmapped_readings: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """False when a source is down or the outbox is full (HTTP 503)."""
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "edge_id": self.edge_id,
            "status": "ok" if self.ok else "degraded",
            "problems": self.problems,
            "sources": {source.source_id: _source_json(source) for source in self.sources},
            "outbox": {
                "undelivered": self.outbox_undelivered,
                "max_records": self.outbox_max_records,
                "full": self.outbox_full,
                "dropped": self.outbox_dropped,
                "sinks": {sink.health.name: sink.to_json() for sink in self.sinks},
            },
            "counters": {
                path: {"total": self.totals.get(path), "decisions": decisions}
                for path, decisions in self.decisions.items()
            },
            "unmapped_readings": self.unmapped_readings,
        }


def problems_of(sources: list[SourceHealth], outbox_full: bool) -> list[str]:
    """What makes the edge unhealthy: a source that is down, a full outbox."""
    problems = [f"source {s.source_id} is not connected" for s in sources if not s.connected]
    if outbox_full:
        problems.append("outbox is full: readings are not taken")
    return problems


def _source_json(source: SourceHealth) -> dict[str, Any]:
    body = asdict(source)
    body.pop("source_id")
    body["last_data_at"] = source.last_data_at.isoformat() if source.last_data_at else None
    return body
