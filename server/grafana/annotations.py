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

Idempotent: the crossing is looked up by its two identifying tags first and not added when
found. After adding it is looked up again; when there are several (replicas raced, or one stopped
between adding and cleaning up), all but the one with the lowest id are deleted. Grafana's ids
grow, so the lowest is one every replica sees after its own add: all keep the same one.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from server.crossings import Crossing
from server.grafana.client import GrafanaError, call, grafana_api
from taktline.config.settings import GrafanaSettings
from taktline.influxwire import epoch_ns
from taktline.model.plant import Plant

TAG = "milestone"
FIND_LIMIT = 100
"""Most annotations one look-up returns (duplicates of one crossing: one per racing replica)."""


class AnnotationError(RuntimeError):
    """Grafana did not take, find or delete an annotation (unreachable, or an error answer)."""


@dataclass(frozen=True, slots=True)
class Annotation:
    """What Grafana is sent for one crossing."""

    time_ms: int
    tags: tuple[str, ...]
    text: str

    @property
    def key_tags(self) -> tuple[str, str]:
        """The tags that identify the crossing: milestone:<id>, crossing:<value>."""
        return self.tags[3], self.tags[4]


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


def annotation(crossing: Crossing, names: PlantNames) -> Annotation:
    """One crossing as one annotation."""
    counter = crossing.counter
    tags = (
        TAG,
        f"site:{counter.site}",
        f"line:{counter.line}",
        f"milestone:{crossing.milestone}",
        f"crossing:{crossing.value}",
    )
    when = names.local_time(crossing).strftime("%H:%M:%S")
    text = f"{crossing.value:,} units, {names.place(crossing)}, {when}"
    return Annotation(epoch_ns(crossing.ts) // 1_000_000, tags, text)


class MilestoneAnnotations:
    """`async with MilestoneAnnotations(settings, plant) as grafana: await grafana.annotate(c)`.

    The grafana-client API is built at the first call, so that a token that cannot be read is
    an AnnotationError the caller retries, like an unreachable Grafana."""

    def __init__(self, settings: GrafanaSettings, plant: Plant):
        self.settings = settings
        self.names = PlantNames.of(plant)
        self._api: Any = None
        """grafana-client's AsyncGrafanaApi (untyped), built at the first call."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._api is not None:
            await self._api.client.s.close()
            self._api = None

    async def annotate(self, crossing: Crossing) -> int:
        """Make sure the crossing has exactly one annotation; returns its id. Raises
        AnnotationError."""
        wanted = annotation(crossing, self.names)
        try:
            found = await self._find(wanted)
            if not found:
                await self._add(wanted)
                found = await self._find(wanted)
                if not found:
                    raise GrafanaError("added, then not found")
            keep, *duplicates = sorted(found)
            for duplicate in duplicates:
                await self._delete(duplicate)
        except GrafanaError as exc:
            where = f"{crossing.milestone} {crossing.value}"
            raise AnnotationError(
                f"Grafana {self.settings.url}, annotation {where}: {exc}"
            ) from None
        return keep

    async def _find(self, wanted: Annotation) -> list[int]:
        """The ids of the annotations with the crossing's identifying tags."""
        request = self._annotations().find_annotations(tags=list(wanted.key_tags), limit=FIND_LIMIT)
        answer = await call("find", request)
        if not isinstance(answer, list) or not all(_has_id(item) for item in answer):
            raise GrafanaError("find: Grafana answered something other than a list of annotations")
        return [item["id"] for item in answer]

    async def _add(self, wanted: Annotation) -> None:
        request = self._annotations().add_annotation(
            time_from=wanted.time_ms,
            time_to=wanted.time_ms,
            tags=list(wanted.tags),
            text=wanted.text,
        )
        await call("add", request)

    async def _delete(self, annotation_id: int) -> None:
        """Delete a duplicate; one that another replica deleted already is fine."""
        try:
            await call(
                f"delete {annotation_id}",
                self._annotations().delete_annotations_by_id(annotations_id=annotation_id),
            )
        except GrafanaError as exc:
            if exc.status != 404:
                raise

    def _annotations(self) -> Any:
        """grafana-client's (untyped) annotations element."""
        if self._api is None:
            self._api = grafana_api(self.settings)
        return self._api.annotations


def _has_id(item: object) -> bool:
    return isinstance(item, dict) and type(item.get("id")) is int
