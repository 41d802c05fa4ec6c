"""Who leads a line at an instant, and the escalation chain behind them.

Pure functions over the plant model with an explicit `now` (an aware datetime), no I/O:

- The running shift comes from the line's shift calendar (`taktline.shifts.shift_at`): a
  shift's end is exclusive, a night shift belongs to the day it started, days off have no
  shift, and a shift across a daylight-saving change is an hour shorter or longer.
- The rotation serving the line (line, else area, else site) names the crew for that shift and
  day; its lead is the lead on duty.
- Overrides replace that lead: among those matching the line, shift, day or instant and the
  rotation's lead or crew, the most specific wins (see `_specificity`). They never chain.
- No shift running, no rotation and no override, or '-' in the cycle: `lead_on_duty` is None.
  What to do then is the alert engine's decision; `escalation_chain` still lists the levels, so
  the engine can alert the first level at once instead of waiting for its `after_minutes`.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Literal

from taktline.model.plant import PlacedLine, Plant
from taktline.model.rosters import Crew, Override, Person, Rosters, Rotation
from taktline.shifts import ShiftWindow, shift_at

LEAD_LEVEL = "shift lead"


@dataclass(frozen=True, slots=True)
class OnDuty:
    """The lead of a line at an instant, with the shift and why it is them."""

    line: str
    person: Person
    shift: ShiftWindow
    shift_day: dt.date
    """The day the shift started, in the calendar's zone (the day the rotation is read at)."""
    crew: Crew | None
    """The crew the rotation puts on this shift (also when an override replaced its lead)."""
    rotation: Rotation | None
    override: Override | None

    @property
    def source(self) -> Literal["rotation", "override"]:
        """Whether the rotation or an override made this person the lead."""
        return "rotation" if self.override is None else "override"

    def reason(self) -> str:
        """One line for people: which rotation and crew, or which override and why."""
        shift = f"{self.shift.name} shift of {self.shift_day.isoformat()}"
        crew = f"crew {self.crew.id}" if self.crew is not None else "no crew"
        if self.override is None:
            rotation = self.rotation.id if self.rotation is not None else "?"
            return f"{shift}: {crew} of rotation {rotation}"
        why = f" ({self.override.reason})" if self.override.reason else ""
        replaced = f" instead of {self.override.replaces}" if self.override.replaces else ""
        return f"{shift}: override{why}{replaced}, {crew}"


@dataclass(frozen=True, slots=True)
class Level:
    """One step of an escalation chain: whom to alert when `after_minutes` passed unacked."""

    name: str
    person: Person
    after_minutes: int


def lead_on_duty(plant: Plant, line_id: str, now: dt.datetime) -> OnDuty | None:
    """The lead of `line_id` at `now`, or None when no shift runs or nobody is named for it.

    Raises ValueError for a naive `now` or a line the plant does not have.
    """
    placed = _placed(plant, line_id)
    rosters = plant.rosters
    if rosters is None:
        return None
    calendar = plant.shift_calendars[placed.line.shift_calendar]
    window = shift_at(calendar, now)
    if window is None:
        return None
    day = window.start.astimezone(calendar.zone).date()
    rotation = rosters.rotation_for(placed.site.id, placed.area.id, line_id)
    crew_id = rotation.crew_on(day, window.name) if rotation is not None else None
    crew = rosters.crew(crew_id) if crew_id is not None else None
    lead = crew.lead if crew is not None else None
    override = _override(rosters, line_id, window, day, now, calendar.zone, (lead, crew_id))
    chosen = override.by if override is not None else lead
    if chosen is None:
        return None
    return OnDuty(line_id, _person(rosters, chosen), window, day, crew, rotation, override)


def escalation_chain(plant: Plant, line_id: str, now: dt.datetime) -> list[Level]:
    """Whom an alert on `line_id` raised at `now` goes to, in order.

    First the lead on duty (`LEAD_LEVEL`, 0 minutes) when there is one, then the line's, the
    area's and the site's escalation levels; `after_minutes` count from the alert. A person
    already in the chain (e.g. an area manager standing in as lead) is not repeated.
    """
    placed = _placed(plant, line_id)
    rosters = plant.rosters
    if rosters is None:
        return []
    lead = lead_on_duty(plant, line_id, now)
    chain = [Level(LEAD_LEVEL, lead.person, 0)] if lead is not None else []
    for name, level in rosters.escalation_for(placed.site.id, placed.area.id, line_id):
        if all(step.person.id != level.person for step in chain):
            chain.append(Level(name, _person(rosters, level.person), level.after_minutes))
    return chain


def _placed(plant: Plant, line_id: str) -> PlacedLine:
    placed = plant.line(line_id)
    if placed is None:
        raise ValueError(f"the plant has no line '{line_id}'")
    return placed


def _person(rosters: Rosters, person_id: str) -> Person:
    person = rosters.person(person_id)
    if person is None:
        raise ValueError(f"the rosters name '{person_id}', who is not in rosters.people")
    return person


def _override(
    rosters: Rosters,
    line_id: str,
    window: ShiftWindow,
    day: dt.date,
    now: dt.datetime,
    zone: zoneinfo.ZoneInfo,
    rotation_lead: tuple[str | None, str | None],
) -> Override | None:
    """The most specific override for this line, shift and instant; later ones win ties."""
    best: Override | None = None
    best_rank: tuple[bool, bool, bool, float] | None = None
    for override in rosters.overrides:
        span = _span(override, day, now, zone)
        if (
            span is None
            or (override.lines and line_id not in override.lines)
            or (override.shift is not None and override.shift != window.name)
            or (override.replaces is not None and override.replaces not in rotation_lead)
        ):
            continue
        rank = _specificity(override, span)
        if best_rank is None or rank >= best_rank:
            best, best_rank = override, rank
    return best


def _span(
    override: Override, day: dt.date, now: dt.datetime, zone: zoneinfo.ZoneInfo
) -> dt.timedelta | None:
    """How long the override's time range is, when it holds `now` (or the shift's day)."""
    if override.date is not None:
        return dt.timedelta(days=1) if override.date == day else None
    assert override.from_ is not None and override.until is not None
    start, end = _aware(override.from_, zone), _aware(override.until, zone)
    return end - start if start <= now < end else None


def _specificity(override: Override, span: dt.timedelta) -> tuple[bool, bool, bool, float]:
    """Named lines beat all lines, then a named shift, then a named `replaces`, then the
    shorter time range (a `date` counts as one day)."""
    return (
        bool(override.lines),
        override.shift is not None,
        override.replaces is not None,
        -span.total_seconds(),
    )


def _aware(value: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)
