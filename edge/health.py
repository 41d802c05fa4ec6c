"""The edge's health snapshot: sources, outbox, sinks and counter decisions, as JSON for
`/healthz` and as the live-bus health message (`taktline.livebus.EdgeHealth`).

`report_health` publishes a health message every HEALTH_EVERY_S on the edge's retained health
topic. A message that cannot be sent (the live bus is down) is skipped: the next one is a fresh
sample, and the live-bus sink already logs that it is down.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from collectors.base import SourceHealth
from edge.sinks.base import SinkHealth
from edge.sinks.errors import SinkUnavailableError
from taktline.livebus import EdgeHealth, OutboxHealthBody, SinkHealthBody, SourceHealthBody

HEALTH_EVERY_S = 10.0
"""How often the edge publishes its health on the live bus."""


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


class HealthReporter:
    """Health snapshots as live-bus messages; remembers each sink's writes so that `write_s`
    is the mean write latency since the previous message."""

    def __init__(self) -> None:
        self._writes: dict[str, tuple[int, float]] = {}

    def message(self, snapshot: HealthSnapshot, ts: dt.datetime) -> EdgeHealth:
        """The health message of `snapshot`, stamped `ts`."""
        ages = [s.oldest_pending_age_s or 0.0 for s in snapshot.sinks]
        return EdgeHealth(
            edge_id=snapshot.edge_id,
            ts=ts,
            sources=[
                SourceHealthBody(
                    source=source.source_id,
                    connected=source.connected,
                    last_data_at=source.last_data_at,
                    reconnects=source.reconnects,
                    readings=source.readings,
                    rejected=source.rejected,
                )
                for source in snapshot.sources
            ],
            outbox=OutboxHealthBody(
                depth=snapshot.outbox_undelivered,
                oldest_age_s=max(ages, default=0.0),
                dropped=snapshot.outbox_dropped,
                max_records=snapshot.outbox_max_records,
                full=snapshot.outbox_full,
            ),
            sinks=[self._sink(sink) for sink in snapshot.sinks],
        )

    def _sink(self, sink: SinkStatus) -> SinkHealthBody:
        health = sink.health
        writes, seconds = self._writes.get(health.name, (0, 0.0))
        self._writes[health.name] = (health.writes, health.write_seconds)
        new_writes = health.writes - writes
        return SinkHealthBody(
            sink=health.name,
            connected=health.connected,
            depth=sink.depth,
            delivered=health.delivered,
            errors=health.errors,
            rejected=health.rejected,
            write_s=(health.write_seconds - seconds) / new_writes if new_writes > 0 else None,
        )


async def report_health(
    snapshot: Callable[[], HealthSnapshot],
    publish: Callable[[bytes], Awaitable[None]],
    every_s: float = HEALTH_EVERY_S,
) -> None:
    """Publish a health message every `every_s` until cancelled (the first after `every_s`)."""
    reporter = HealthReporter()
    while True:
        await asyncio.sleep(every_s)
        message = reporter.message(snapshot(), dt.datetime.now(dt.UTC))
        try:
            await publish(message.model_dump_json().encode())
        except SinkUnavailableError:
            continue  # skipped: the live-bus sink logs its outage; the next sample is fresh
