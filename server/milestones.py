"""The next milestone of a line: which of the plant's milestones apply, and their next value.

A milestone applies to a line when its scope contains the line's output counter and it counts
that counter's name, or when its scope lies at or below the line (any counter). Its total is the
sum of the latest totals of every plant counter with its name inside its scope.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from taktline.model.milestones import Milestone
from taktline.model.paths import CounterPath
from taktline.model.plant import PlacedLine

MAX_ETA = dt.timedelta(days=3650)
"""An ETA further away than this is shown as none (it means nothing on a line screen)."""


class NextMilestone(BaseModel):
    """The next value of a milestone that the line's output (or the line) will cross."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str | None
    scope: str
    counter: str
    value: int = Field(description="The threshold (or the next step) to be crossed.")
    total: int = Field(description="The scope's total now (sum over the counters below it).")
    remaining: int = Field(description="Units to go: value - total.")
    rate_per_hour: float = Field(description="The scope's rate over the last 15 minutes.")


def in_scope(milestone: Milestone, path: CounterPath) -> bool:
    """Whether the milestone counts this counter."""
    levels = (path.site, path.area, path.line, path.station)
    parts = milestone.scope_parts
    return path.counter == milestone.counter and levels[: len(parts)] == parts


def applies_to(milestone: Milestone, placed: PlacedLine) -> bool:
    """Whether a line screen shows this milestone."""
    if in_scope(milestone, placed.output_path()):
        return True
    line_levels = (placed.site.id, placed.area.id, placed.line.id)
    parts = milestone.scope_parts
    return len(parts) >= 3 and parts[:3] == line_levels


def next_value(milestone: Milestone, total: int) -> int | None:
    """The next value above `total`: the threshold if not yet reached, or the next step."""
    if milestone.threshold is not None:
        return milestone.threshold if total < milestone.threshold else None
    assert milestone.every is not None
    return (total // milestone.every + 1) * milestone.every


def eta(now: dt.datetime, remaining: int, rate_per_hour: float) -> dt.datetime | None:
    """When `remaining` units are made at `rate_per_hour` (whole seconds); None at rate 0."""
    if rate_per_hour <= 0:
        return None
    wait = dt.timedelta(seconds=round(remaining * 3600 / rate_per_hour))
    if wait > MAX_ETA:
        return None
    return (now + wait).replace(microsecond=0)
