"""The live-bus contract between edges and the server: topics and JSON bodies.

Counter topic: `taktline/v1/{site}/{area}/{line}/{station}/{counter}`, retained, QoS 1, body
`{"total": int, "delta": int, "raw": int|null, "quality": str, "ts": "2026-11-26T09:41:02.123Z"}`.
`ts` is always ISO 8601 in UTC with millisecond precision and a `Z`.
Edge status: `taktline/v1/_edge/{edge_id}/status`, retained, body
`{"edge_id": str, "state": "online"|"offline", "lines": [line ids], "ts": ...}`; the edge's last
will publishes the same body with state "offline".
Edge health: `taktline/v1/_edge/{edge_id}/health`, retained, QoS 1, body `EdgeHealth` (its
sources, outbox and sinks), sent by the edge every few seconds while it is connected.
Milestone crossing: `taktline/v1/_milestones/{milestone id}`, not retained, QoS 1, body
`{"milestone": id, "name": str, "value": int, "scope": str, "line": line id, "ts": ...}`, sent
by each server (replica) once per crossing; `ts` is that of the update that crossed it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    NonNegativeInt,
    field_serializer,
)

from taktline.model.paths import CounterPath
from taktline.records import CounterUpdate, Quality

ROOT = "taktline/v1"
COUNTER_SUBSCRIPTION = f"{ROOT}/+/+/+/+/+"
EDGE_STATUS_SUBSCRIPTION = f"{ROOT}/_edge/+/status"
EDGE_HEALTH_SUBSCRIPTION = f"{ROOT}/_edge/+/health"
MILESTONE_SUBSCRIPTION = f"{ROOT}/_milestones/+"


def counter_topic(path: CounterPath) -> str:
    """The retained topic that carries a counter's latest total."""
    return f"{ROOT}/{path}"


def parse_counter_topic(topic: str) -> CounterPath | None:
    """The counter a topic belongs to, or None for any other topic."""
    prefix = ROOT + "/"
    if not topic.startswith(prefix) or topic.startswith(f"{ROOT}/_"):
        return None
    try:
        return CounterPath.parse(topic[len(prefix) :])
    except ValueError:
        return None


def edge_status_topic(edge_id: str) -> str:
    """The retained status topic of one edge."""
    return f"{ROOT}/_edge/{edge_id}/status"


def edge_health_topic(edge_id: str) -> str:
    """The retained health topic of one edge."""
    return f"{ROOT}/_edge/{edge_id}/health"


def parse_edge_health_topic(topic: str) -> str | None:
    """The edge id of a health topic, or None for any other topic."""
    prefix, suffix = f"{ROOT}/_edge/", "/health"
    if not topic.startswith(prefix) or not topic.endswith(suffix):
        return None
    edge_id = topic[len(prefix) : -len(suffix)]
    return edge_id if edge_id and "/" not in edge_id else None


def milestone_topic(milestone_id: str) -> str:
    """The (not retained) topic that announces a milestone's crossings."""
    return f"{ROOT}/_milestones/{milestone_id}"


Seconds = Annotated[FiniteFloat, Field(ge=0)]
"""A duration in seconds: finite, not negative."""


def format_ts(ts: dt.datetime) -> str:
    """ISO 8601, UTC, milliseconds, `Z`."""
    return ts.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    @field_serializer("ts", check_fields=False)
    def _ts(self, ts: dt.datetime) -> str:
        return format_ts(ts)


class CounterMessage(_Body):
    """Body of a counter topic."""

    total: int
    delta: int
    raw: int | None = None
    quality: Quality = Quality.GOOD
    ts: AwareDatetime

    @classmethod
    def from_update(cls, update: CounterUpdate) -> CounterMessage:
        """The message an edge publishes for an update."""
        return cls(
            total=update.total,
            delta=update.delta,
            raw=update.raw,
            quality=update.quality,
            ts=update.ts,
        )


class EdgeStatus(_Body):
    """Body of an edge status topic."""

    edge_id: str
    state: Literal["online", "offline"]
    lines: list[str] = Field(default_factory=list, description="Ids of the lines it serves.")
    ts: AwareDatetime


class MilestoneMessage(_Body):
    """Body of a milestone topic: one crossing, for the screens' celebration."""

    milestone: str = Field(description="The milestone's id.")
    name: str = Field(description="The milestone's name (its id when it has none).")
    value: int = Field(description="The value crossed: the threshold or a step's multiple.")
    scope: str = Field(description="The milestone's scope, an asset path prefix.")
    line: str = Field(description="The line whose counter update crossed it.")
    ts: AwareDatetime = Field(description="The `ts` of the update that crossed it.")


class SourceHealthBody(_Body):
    """One source of an edge, in its health message."""

    source: str = Field(description="The source's id.")
    connected: bool
    last_data_at: AwareDatetime | None = Field(description="When it last delivered data.")
    reconnects: NonNegativeInt = Field(description="Reconnects since the edge started.")
    readings: NonNegativeInt = Field(description="Readings taken since the edge started.")
    rejected: NonNegativeInt = Field(description="Bad input refused since the edge started.")

    @field_serializer("last_data_at")
    def _last_data_at(self, ts: dt.datetime | None) -> str | None:
        return format_ts(ts) if ts is not None else None


class OutboxHealthBody(_Body):
    """The edge's outbox, in its health message."""

    depth: NonNegativeInt = Field(description="Updates the slowest sink has not delivered.")
    oldest_age_s: Seconds = Field(
        description="Age of the oldest update a sink has not delivered (0 when none)."
    )
    dropped: NonNegativeInt = Field(
        description="Updates dropped undelivered since the edge started (when_full: drop_oldest)."
    )
    max_records: NonNegativeInt = Field(description="Most undelivered updates it holds.")
    full: bool = Field(description="True while it refuses updates (the readings wait).")


class SinkHealthBody(_Body):
    """One sink of an edge (live_bus, influxdb), in its health message."""

    sink: str = Field(description="The sink's name.")
    connected: bool
    depth: NonNegativeInt = Field(description="Updates this sink has not delivered.")
    delivered: NonNegativeInt = Field(description="Updates delivered since the edge started.")
    errors: NonNegativeInt = Field(description="Failed deliveries since the edge started.")
    rejected: NonNegativeInt = Field(description="Updates refused for good (dead letters).")
    write_s: Seconds | None = Field(
        description="Mean seconds per accepted write since the previous health message; null"
        " when there was none."
    )


class EdgeHealth(_Body):
    """Body of an edge health topic: a sample of the edge's health at `ts`."""

    edge_id: str
    ts: AwareDatetime
    sources: list[SourceHealthBody] = Field(default_factory=list)
    outbox: OutboxHealthBody
    sinks: list[SinkHealthBody] = Field(default_factory=list)
