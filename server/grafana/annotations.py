"""Milestone crossings as Grafana annotations: exactly one per crossing, across retries,
restarts and server replicas.

An annotation is an organization annotation (no dashboard or panel: every dashboard with an
annotation query on the tag `milestone` shows it) at the crossing update's `ts` in epoch ms,
with the text "30,000,000 units, Final assembly line 2, 14:02:11" (the value crossed; the name
of the line whose update crossed it, or of the milestone's scope when the plant no longer has
that line; the time of day in that line's time zone) and the tags

    milestone                        every milestone annotation (what dashboards query)
    site:<site>, line:<line>         of the counter whose update crossed it (filter by either)
    milestone:<id>, crossing:<value> what identifies the crossing, as the state store's key

Grafana reads `key:value` tags as pairs, and `GET /api/annotations?tags=a&tags=b` finds the
annotations that have all of them.

Exactly one per crossing: `server.grafana.exactly_once`, by the two identifying tags.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass

from server.crossings import Crossing
from server.grafana.exactly_once import Wanted
from taktline.influxwire import epoch_ns
from taktline.model.plant import Plant

TAG = "milestone"


@dataclass(frozen=True, slots=True)
class PlantNames:
    """What an annotation's text takes from the plant model: names and time zones."""

    lines: Mapping[str, tuple[str, zoneinfo.ZoneInfo]]
    """Line id -> its name and its shift calendar's time zone."""
    scopes: Mapping[str, str]
    """Asset path (`site`, `site/area`, ...) -> its name."""
    zone: zoneinfo.ZoneInfo
    """For a line the plant no longer has: the zone of the plant's first shift calendar."""

    @classmethod
    def of(cls, plant: Plant) -> PlantNames:
        """The names and zones of `plant`."""
        lines: dict[str, tuple[str, zoneinfo.ZoneInfo]] = {}
        scopes: dict[str, str] = {}
        for placed in plant.lines():
            site, area, line = placed.site, placed.area, placed.line
            lines[line.id] = (line.name, plant.shift_calendars[line.shift_calendar].zone)
            scopes[site.id] = site.name
            scopes[f"{site.id}/{area.id}"] = area.name
            scopes[f"{site.id}/{area.id}/{line.id}"] = line.name
            for station in line.stations:
                scopes[f"{site.id}/{area.id}/{line.id}/{station.id}"] = station.name
        zone = next(iter(plant.shift_calendars.values())).zone
        return cls(lines, scopes, zone)

    def place(self, crossing: Crossing) -> str:
        """The name of the line that crossed, else of the scope, else the line's id."""
        known = self.lines.get(crossing.counter.line)
        if known is not None:
            return known[0]
        return self.scopes.get(crossing.scope.strip("/"), crossing.counter.line)

    def local_time(self, crossing: Crossing) -> dt.datetime:
        """The crossing's time in its line's time zone."""
        known = self.lines.get(crossing.counter.line)
        return crossing.ts.astimezone(known[1] if known is not None else self.zone)


def annotation(crossing: Crossing, names: PlantNames) -> Wanted:
    """One crossing as one point annotation."""
    counter = crossing.counter
    key = (f"milestone:{crossing.milestone}", f"crossing:{crossing.value}")
    tags = (TAG, f"site:{counter.site}", f"line:{counter.line}", *key)
    when = names.local_time(crossing).strftime("%H:%M:%S")
    text = f"{crossing.value:,} units, {names.place(crossing)}, {when}"
    time_ms = epoch_ns(crossing.ts) // 1_000_000
    return Wanted(time_ms, time_ms, tags, text, key)
