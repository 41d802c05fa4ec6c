"""The plant file's root model and the lookups every part uses."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import Field

from taktline.model.alerts import AlertSettings
from taktline.model.assets import Area, Counter, Line, Site, Station
from taktline.model.base import Slug, StrictModel
from taktline.model.milestones import Milestone
from taktline.model.paths import CounterPath
from taktline.model.rosters import Rosters
from taktline.model.shifts import ShiftCalendar
from taktline.model.sources import Source


@dataclass(frozen=True, slots=True)
class PlacedLine:
    """A line with the site and area it belongs to."""

    site: Site
    area: Area
    line: Line

    def output_path(self) -> CounterPath:
        """The path of the counter that counts this line's units."""
        station, counter = self.line.output.split("/", 1)
        return CounterPath(self.site.id, self.area.id, self.line.id, station, counter)


class Plant(StrictModel):
    """One plant file: the asset tree, shift calendars, milestones and data sources."""

    name: str
    sites: list[Site] = Field(min_length=1)
    shift_calendars: dict[Slug, ShiftCalendar] = Field(min_length=1)
    milestones: list[Milestone] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)
    rosters: Rosters | None = Field(
        default=None, description="Who leads which line when, and whom alerts escalate to."
    )
    alerts: AlertSettings = Field(
        default_factory=AlertSettings, description="Alert rules: defaults and per-line overrides."
    )

    def lines(self) -> Iterator[PlacedLine]:
        """Every line with its site and area, in file order."""
        for site in self.sites:
            for area in site.areas:
                for line in area.lines:
                    yield PlacedLine(site, area, line)

    def line(self, line_id: str) -> PlacedLine | None:
        """The line with this id, or None."""
        return next((placed for placed in self.lines() if placed.line.id == line_id), None)

    def counters(self) -> Iterator[tuple[CounterPath, Counter]]:
        """Every counter of the plant with its path."""
        for placed in self.lines():
            for station in placed.line.stations:
                for counter in station.counters:
                    path = CounterPath(
                        placed.site.id, placed.area.id, placed.line.id, station.id, counter.name
                    )
                    yield path, counter

    def counter(self, path: CounterPath) -> Counter | None:
        """The counter at this path, or None."""
        station = self.station(path)
        if station is None:
            return None
        return next((c for c in station.counters if c.name == path.counter), None)

    def station(self, path: CounterPath) -> Station | None:
        """The station a counter path points into, or None."""
        placed = self.line(path.line)
        if placed is None or (placed.site.id, placed.area.id) != (path.site, path.area):
            return None
        return next((s for s in placed.line.stations if s.id == path.station), None)
