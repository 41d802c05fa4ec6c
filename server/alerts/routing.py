"""Whom an alert goes to and when: its escalation plan, fixed when it is raised.

For each line of the alert, `escalation_chain` gives the lead on duty at that moment (due at
once) and the line's, area's and site's escalation levels (due `after_minutes` after the alert
was raised). With no lead on duty the first escalation level is due at once: an alert nobody
can receive should not wait. An alert on several lines (an edge serving them) goes to everyone
of their chains, each person once, at the earliest time any of the lines would alert them.
"""

from __future__ import annotations

import datetime as dt

from server.alerts.records import Step
from server.alerts.roster import LEAD_LEVEL, escalation_chain, lead_on_duty
from taktline.model.plant import Plant
from taktline.model.rosters import Person


def plan(plant: Plant, lines: tuple[str, ...], raised_at: dt.datetime) -> tuple[Step, ...]:
    """The escalation steps of an alert on `lines` raised at `raised_at`, in order of due time."""
    earliest: dict[str, Step] = {}
    for line in lines:
        if plant.line(line) is None:
            continue
        levels = escalation_chain(plant, line, raised_at)
        for index, level in enumerate(levels):
            minutes = 0 if index == 0 else level.after_minutes  # the lead's are 0 anyway
            step = Step(level.name, level.person.id, raised_at + dt.timedelta(minutes=minutes))
            known = earliest.get(step.person)
            if known is None or step.due_at < known.due_at:
                earliest[step.person] = step
    return tuple(sorted(earliest.values(), key=lambda step: step.due_at))


def lead_for_notice(plant: Plant, lines: tuple[str, ...], now: dt.datetime) -> Step | None:
    """The lead on duty of the first of `lines` that has one (a notice goes to them only)."""
    for line in lines:
        if plant.line(line) is None:
            continue
        on_duty = lead_on_duty(plant, line, now)
        if on_duty is not None:
            return Step(LEAD_LEVEL, on_duty.person.id, now)
    return None


def person(plant: Plant, person_id: str) -> Person | None:
    """The roster's person with this id, if the plant has rosters and them."""
    return plant.rosters.person(person_id) if plant.rosters is not None else None


def name_of(plant: Plant, who: str) -> str:
    """A person's name for people to read; anyone else (an API caller's `by`) as given."""
    found = person(plant, who)
    return found.name if found is not None else who
