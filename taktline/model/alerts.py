"""Alert rule settings: plant-wide defaults, with per-line and per-station overrides.

Every rule has `enabled` and a `severity`, a condition that makes it fire, a stricter one
(`clear_*`) that makes it resolve, and minimum durations for both, so a signal flapping around
its threshold fires once and resolves once (the semantics are in docs/alerts.md). An override
names only the keys it changes: `lines: {fa1: {line_stopped: {min_minutes: 5}}}` keeps every
other key of the plant-wide `line_stopped`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Literal, TypeVar

from pydantic import BaseModel, Field

from taktline.model.base import Slug, StrictModel

if TYPE_CHECKING:
    from taktline.model.plant import Plant

Severity = Literal["info", "warning", "critical"]
Minutes = float
KeyPath = tuple[str | int, ...]
Problem = tuple[KeyPath, str]


class LineStoppedSettings(StrictModel):
    """No unit for `after_takts` takts (at least `min_minutes`) of productive shift time.

    Resolved when the line has made units again, each within `clear_takts` takts of the last,
    for `clear_for_minutes` and at least `clear_takts` takts (so one unit alone never does).
    """

    enabled: bool = True
    severity: Severity = "critical"
    after_takts: float = Field(default=5, gt=0)
    min_minutes: Minutes = Field(default=3, ge=0)
    clear_takts: float = Field(default=3, gt=0)
    clear_for_minutes: Minutes = Field(default=2, ge=0)


class RateBelowTargetSettings(StrictModel):
    """The rate over the last `window_minutes` of productive time is below `percent` % of the
    planned rate (3600 / takt) for `for_minutes`; resolved at `clear_percent` % held for
    `clear_for_minutes`."""

    enabled: bool = True
    severity: Severity = "warning"
    percent: float = Field(default=80, gt=0, le=100)
    window_minutes: Minutes = Field(default=15, gt=0)
    for_minutes: Minutes = Field(default=15, ge=0)
    clear_percent: float = Field(default=90, gt=0, le=100)
    clear_for_minutes: Minutes = Field(default=5, ge=0)


class ShiftTargetAtRiskSettings(StrictModel):
    """The shift total projected at the shift's pace so far is below `percent` % of the shift
    target, from `after_minutes_into_shift` productive minutes on, for `for_minutes`."""

    enabled: bool = True
    severity: Severity = "warning"
    percent: float = Field(default=90, gt=0, le=100)
    after_minutes_into_shift: Minutes = Field(default=60, ge=0)
    for_minutes: Minutes = Field(default=10, ge=0)
    clear_percent: float = Field(default=95, gt=0, le=100)
    clear_for_minutes: Minutes = Field(default=10, ge=0)


class YieldBelowSettings(StrictModel):
    """A station's first-pass yield over the last `window_minutes` is below `percent` %, once at
    least `min_units` were tested in that window, for `for_minutes`."""

    enabled: bool = True
    severity: Severity = "warning"
    percent: float = Field(default=95, gt=0, le=100)
    window_minutes: Minutes = Field(default=60, gt=0)
    min_units: int = Field(default=50, ge=1)
    for_minutes: Minutes = Field(default=10, ge=0)
    clear_percent: float = Field(default=97, gt=0, le=100)
    clear_for_minutes: Minutes = Field(default=15, ge=0)


class SourceStaleSettings(StrictModel):
    """A line has sent nothing (no counter message, no edge heartbeat) for `after_minutes`, or
    an edge's source has been disconnected that long; resolved after `clear_for_minutes` of
    fresh data (a connected source)."""

    enabled: bool = True
    severity: Severity = "critical"
    after_minutes: Minutes = Field(default=2, gt=0)
    clear_for_minutes: Minutes = Field(default=1, ge=0)


class EdgeBacklogSettings(StrictModel):
    """An edge's outbox holds at least `min_depth` undelivered updates and has not shrunk from
    one health sample to the next for `for_minutes`; resolved when it holds at most
    `clear_depth` or shrinks, for `clear_for_minutes`."""

    enabled: bool = True
    severity: Severity = "warning"
    min_depth: int = Field(default=1000, ge=1)
    for_minutes: Minutes = Field(default=10, ge=0)
    clear_depth: int = Field(default=100, ge=0)
    clear_for_minutes: Minutes = Field(default=5, ge=0)


class MilestoneSettings(StrictModel):
    """A milestone was crossed: one informational notice, never resolved."""

    enabled: bool = True
    severity: Severity = "info"


class StationAlerts(StrictModel):
    """Overrides for one station (only the yield is measured per station)."""

    yield_below: YieldBelowSettings | None = None


class LineAlerts(StrictModel):
    """Overrides for one line; each names only the keys it changes."""

    line_stopped: LineStoppedSettings | None = None
    rate_below_target: RateBelowTargetSettings | None = None
    shift_target_at_risk: ShiftTargetAtRiskSettings | None = None
    yield_below: YieldBelowSettings | None = None
    source_stale: SourceStaleSettings | None = None
    milestone: MilestoneSettings | None = None
    stations: dict[Slug, StationAlerts] = Field(default_factory=dict)


class LineRules(StrictModel):
    """The rule settings in force for one line (defaults merged with its overrides)."""

    line_stopped: LineStoppedSettings = Field(default_factory=LineStoppedSettings)
    rate_below_target: RateBelowTargetSettings = Field(default_factory=RateBelowTargetSettings)
    shift_target_at_risk: ShiftTargetAtRiskSettings = Field(
        default_factory=ShiftTargetAtRiskSettings
    )
    yield_below: YieldBelowSettings = Field(default_factory=YieldBelowSettings)
    source_stale: SourceStaleSettings = Field(default_factory=SourceStaleSettings)
    milestone: MilestoneSettings = Field(default_factory=MilestoneSettings)


class AlertSettings(LineRules):
    """The plant file's `alerts`: plant-wide rule settings, the edges' backlog rule, and
    per-line (per-station) overrides."""

    edge_backlog: EdgeBacklogSettings = Field(default_factory=EdgeBacklogSettings)
    lines: dict[Slug, LineAlerts] = Field(default_factory=dict)

    def for_line(self, line_id: str) -> LineRules:
        """The settings in force for a line."""
        override = self.lines.get(line_id)
        fields = {name: getattr(self, name) for name in LineRules.model_fields}
        if override is not None:
            fields = {
                name: merged(value, getattr(override, name)) for name, value in fields.items()
            }
        return LineRules.model_construct(**fields)

    def for_station(self, line_id: str, station_id: str) -> YieldBelowSettings:
        """The yield settings in force for a station."""
        line = self.lines.get(line_id)
        station = line.stations.get(station_id) if line is not None else None
        settings = self.for_line(line_id).yield_below
        return merged(settings, station.yield_below if station is not None else None)

    def problems(self, stations_by_line: Mapping[str, Collection[str]]) -> list[Problem]:
        """What the plant's lines (id -> station ids) make wrong here, at key paths below
        `alerts`: unknown lines and stations, and clear margins on the wrong side."""
        at: KeyPath = ("alerts",)
        found = _margin_problems(at, self)
        for line_id, override in self.lines.items():
            line_at = (*at, "lines", line_id)
            if line_id not in stations_by_line:
                known = ", ".join(stations_by_line) or "none"
                found.append((line_at, f"no line '{line_id}' in the plant (have: {known})"))
                continue
            rules = self.for_line(line_id)
            found += _margin_problems(line_at, rules, only=override.model_fields_set)
            for station_id, station in override.stations.items():
                station_at = (*line_at, "stations", station_id)
                stations = stations_by_line[line_id]
                if station_id not in stations:
                    known = ", ".join(stations)
                    found.append(
                        (station_at, f"no station '{station_id}' in line '{line_id}' ({known})")
                    )
                elif station.yield_below is not None:
                    settings = self.for_station(line_id, station_id)
                    found += _margin_problems(station_at, StationAlerts(yield_below=settings))
        return found


def alert_problems(plant: Plant) -> list[Problem]:
    """The plant's `alerts` checked against its lines and stations (see `problems`)."""
    lines = {placed.line.id: [s.id for s in placed.line.stations] for placed in plant.lines()}
    return plant.alerts.problems(lines)


SettingsT = TypeVar("SettingsT", bound=BaseModel)


def merged(base: SettingsT, override: SettingsT | None) -> SettingsT:
    """`base` with the keys `override` names (each already validated)."""
    if override is None:
        return base
    return base.model_copy(update={k: getattr(override, k) for k in override.model_fields_set})


_MARGINS: dict[str, tuple[str, str, str]] = {
    "line_stopped": ("clear_takts", "after_takts", "at most"),
    "rate_below_target": ("clear_percent", "percent", "at least"),
    "shift_target_at_risk": ("clear_percent", "percent", "at least"),
    "yield_below": ("clear_percent", "percent", "at least"),
    "edge_backlog": ("clear_depth", "min_depth", "below"),
}
"""rule -> (clear key, firing key, how the clear value must compare with the firing one)."""


def _margin_problems(
    at: KeyPath, rules: BaseModel, only: Collection[str] | None = None
) -> list[Problem]:
    """Clear margins that would resolve an alert while it should still fire."""
    found: list[Problem] = []
    for name, (clear_key, fire_key, relation) in _MARGINS.items():
        settings = getattr(rules, name, None)
        if settings is None or (only is not None and name not in only):
            continue
        clear, fire = getattr(settings, clear_key), getattr(settings, fire_key)
        wrong = {"at most": clear > fire, "at least": clear < fire, "below": clear >= fire}
        if wrong[relation]:
            found.append(
                (
                    (*at, name, clear_key),
                    f"{clear_key} ({clear:g}) must be {relation} {fire_key} ({fire:g})",
                )
            )
    return found
