"""The live-bus contract between edges and the server: topics and JSON bodies.

Counter topic: `taktline/v1/{site}/{area}/{line}/{station}/{counter}`, retained, QoS 1, body
`{"total": int, "delta": int, "raw": int|null, "quality": str, "ts": "2026-11-26T09:41:02.123Z"}`.
`ts` is always ISO 8601 in UTC with millisecond precision and a `Z`.
Edge status: `taktline/v1/_edge/{edge_id}/status`, retained, body
`{"edge_id": str, "state": "online"|"offline", "lines": [line ids], "ts": ...}`; the edge's last
will publishes the same body with state "offline".
Milestone crossing: `taktline/v1/_milestones/{milestone id}`, not retained, QoS 1, body
`{"milestone": id, "name": str, "value": int, "scope": str, "line": line id, "ts": ...}`, sent
by each server (replica) once per crossing; `ts` is that of the update that crossed it.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_serializer

from taktline.model.paths import CounterPath
from taktline.records import CounterUpdate, Quality

ROOT = "taktline/v1"
COUNTER_SUBSCRIPTION = f"{ROOT}/+/+/+/+/+"
EDGE_STATUS_SUBSCRIPTION = f"{ROOT}/_edge/+/status"
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


def milestone_topic(milestone_id: str) -> str:
    """The (not retained) topic that announces a milestone's crossings."""
    return f"{ROOT}/_milestones/{milestone_id}"


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
