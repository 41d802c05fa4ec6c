"""What a line screen shows: the JSON shape of one line's state (`GET /api/lines`, events).

Fields are only ever added: the screens' JavaScript reads them by name.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from server.milestones import NextMilestone
from taktline.model.alerts import Severity

LineStatus = Literal["running", "stopped", "no data", "offline", "no shift"]
AlertState = Literal["firing", "notified", "acknowledged"]


class LineAlert(BaseModel):
    """An active alert on a line, as its screen shows it (`server.alerts.lifecycle`)."""

    model_config = ConfigDict(frozen=True)

    id: int
    rule: str = Field(description="line_stopped, rate_below_target, yield_below, ...")
    severity: Severity
    message: str
    raised_at: dt.datetime
    state: AlertState = Field(
        description="firing: nobody reached yet; notified: a message was delivered;"
        " acknowledged: someone took it on."
    )
    notified: list[str] = Field(
        default_factory=list, description="Names of the people a message was delivered to."
    )
    acknowledged_by: str | None = Field(default=None, description="Who acknowledged it.")
    acknowledged_at: dt.datetime | None = None


class StationCounter(BaseModel):
    """The latest value of one counter of a line."""

    model_config = ConfigDict(frozen=True)

    station: str
    counter: str
    total: int
    delta: int
    quality: str
    ts: dt.datetime
    shift_count: int | None = Field(
        default=None, description="Units of this counter this shift, corrections included."
    )
    corrections: int = Field(default=0, description="Manual corrections of it this shift.")


class LineSnapshot(BaseModel):
    """What a line screen shows, as `GET /api/lines` returns it."""

    model_config = ConfigDict(frozen=True)

    line: str = Field(description="The line id; its screen is /lines/{line}.")
    name: str
    site: str
    area: str
    timezone: str = Field(description="The shift calendar's time zone (for local times).")
    shift: str | None = Field(description="Name of the running shift, null outside shifts.")
    shift_start: dt.datetime | None
    shift_end: dt.datetime | None
    shift_progress: float | None = Field(description="Share of the shift's time passed, 0..1.")
    shift_count: int = Field(
        description="Units of the output counter in the current shift, corrections included."
    )
    target: int | None = Field(description="Units planned for the whole shift.")
    target_so_far: float | None = Field(description="Units planned up to now (breaks excluded).")
    total: int | None = Field(description="Lifetime total of the output counter.")
    rate_per_hour: float = Field(description="Units per hour over the last 15 minutes.")
    status: LineStatus
    updated_at: dt.datetime | None = Field(description="Last update from the line (or its edge).")
    stopped_since: dt.datetime | None = Field(
        description="While `stopped`: when the output counted its last unit."
    )
    output: str = Field(description="The output counter: station/counter.")
    stations: list[StationCounter]
    ahead_by: int | None = Field(
        default=None,
        description=(
            "shift_count - floor(target_so_far): positive ahead of plan, negative behind;"
            " null outside a shift."
        ),
    )
    takt_planned_s: float | None = Field(
        default=None,
        description=(
            "Planned seconds per unit: the line's takt, or the shift's productive time over"
            " units_per_shift (null outside a shift for such a target)."
        ),
    )
    takt_actual_s: float | None = Field(
        default=None, description="Seconds per unit at the current rate; null while the rate is 0."
    )
    yield_percent: float | None = Field(
        default=None,
        description=(
            "First-pass yield over the current shift in % (see yield_basis); null outside a"
            " shift, before the first tested unit, or when the counters allow no rule."
        ),
    )
    yield_basis: str | None = Field(
        default=None,
        description="The rule and station of yield_percent, e.g. 'eol: passed/tested'.",
    )
    next_milestone: NextMilestone | None = Field(
        default=None,
        description="The next milestone value this line's output (or the line) will cross.",
    )
    next_milestone_eta: dt.datetime | None = Field(
        default=None, description="When next_milestone is reached at the current rate."
    )
    corrections: int = Field(
        default=0, description="Sum of the manual corrections of the output counter this shift."
    )
    acknowledged_by: str | None = Field(
        default=None, description="Who acknowledged the current stop (only while it lasts)."
    )
    acknowledged_at: dt.datetime | None = Field(
        default=None, description="When the current stop was acknowledged."
    )
    last_unit_at: dt.datetime | None = Field(
        default=None, description="When the output counter last counted a unit (as received)."
    )
    alerts: list[LineAlert] = Field(
        default_factory=list, description="The line's active alerts, oldest first."
    )
