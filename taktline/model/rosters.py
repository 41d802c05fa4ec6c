"""Rosters: who leads which line in which shift, and whom an unacknowledged alert goes to next.

people      who can be alerted, each with contact channels (apprise URLs or e-mail addresses)
crews       a lead and members; a rotation puts crews on shifts
rotations   a cycle of days from an anchor date: each day names the crew of each shift
overrides   one-off replacements (sick leave, swaps) by date or time span
escalation  per line, area or site: the next levels after N minutes without acknowledgement

The resolution (who is on duty at an instant) lives in `server.alerts.roster`; this module holds
the data, its parsing and the cross-reference checks (`roster_problems`).
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, quote, urlsplit

from pydantic import (
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from taktline.model.base import Slug, StrictModel
from taktline.model.secrets import SecretRef

if TYPE_CHECKING:
    from taktline.model.plant import Plant

KeyPath = tuple[str | int, ...]
Problem = tuple[KeyPath, str]

_PLACEHOLDER = re.compile(r"\{([a-z0-9_]+)\}")
_EMAIL = re.compile(r"^[^@\s/:?{}]+@[^@\s/:?{}]+\.[^@\s/:?{}]+$")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://\S+$")
_TOKEN_SCHEMES = frozenset(
    {"msteams", "workflows", "workflow", "slack", "discord", "tgram", "gotify", "gotifys", "pover"}
)
"""Apprise schemes whose URL is itself the credential (webhook or bot tokens in the path)."""
_SECRET_QUERY_KEYS = frozenset({"pass", "password", "token", "apikey", "key", "secret"})
_INLINE = (
    "secrets are never written inline: write {name} in the url and give"
    " secrets: {name: {env: VARIABLE}}, or give the whole url as {env: VARIABLE}"
)


class ContactChannel(StrictModel):
    """One way to reach a person: an apprise URL or an e-mail address.

    Written as a string (`anna@example.com`, `ntfys://ntfy.example.com/fa1-lead`) or as
    `{url, secrets}` where each `{name}` in the url is filled from `secrets.name` (a SecretRef,
    percent-encoded) when the alert is sent, or as `{url: {env: VARIABLE}}` for a URL that is a
    secret as a whole (a Teams or Slack webhook). Its repr shows the scheme and host only.
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    url: str | SecretRef
    secrets: dict[Slug, SecretRef] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"url": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _no_inline_secret(self) -> ContactChannel:
        if isinstance(self.url, SecretRef):
            if self.secrets:
                raise ValueError("a url read from a secret takes no 'secrets'")
            return self
        if _EMAIL.match(self.url):
            if self.secrets:
                raise ValueError("an e-mail address takes no 'secrets'")
            return self
        match = _URL.match(self.url)
        if match is None:
            raise ValueError("a channel is an apprise URL (scheme://...) or an e-mail address")
        used = set(_PLACEHOLDER.findall(self.url))
        if used != set(self.secrets):
            missing = ", ".join(sorted(used - set(self.secrets))) or "-"
            unused = ", ".join(sorted(set(self.secrets) - used)) or "-"
            raise ValueError(f"placeholders without a secret: {missing}; unused secrets: {unused}")
        parts = urlsplit(self.url)
        literal = [v for k, v in parse_qsl(parts.query) if k.lower() in _SECRET_QUERY_KEYS]
        if parts.password is not None:
            literal.append(parts.password)
        token_scheme = match.group(1).lower() in _TOKEN_SCHEMES
        if any(not _PLACEHOLDER.fullmatch(value) for value in literal) or (
            token_scheme and not used
        ):
            raise PydanticCustomError("inline_secret", _INLINE)
        return self

    @property
    def kind(self) -> Literal["email", "apprise"]:
        """`email` for a plain address (sent through the plant's mail relay), else `apprise`."""
        return "email" if isinstance(self.url, str) and _EMAIL.match(self.url) else "apprise"

    def reveal(self) -> str:
        """The address or URL with its secrets read now; raises SecretError. Never log it."""
        if isinstance(self.url, SecretRef):
            return self.url.reveal()
        values = {name: quote(ref.reveal(), safe="") for name, ref in self.secrets.items()}
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.url)

    def __repr__(self) -> str:
        if isinstance(self.url, SecretRef):
            return f"ContactChannel({self.url!r})"
        if self.kind == "email":
            return f"ContactChannel({self.url})"
        parts = urlsplit(self.url)
        host = parts.hostname or "?"
        return f"ContactChannel({parts.scheme}://{host}/…)"

    __str__ = __repr__


class Person(StrictModel):
    """Someone who can lead a shift or be escalated to."""

    id: Slug
    name: str
    channels: list[ContactChannel] = Field(min_length=1)


class Crew(StrictModel):
    """A shift crew. Its `lead` gets the line's alerts while the crew is on duty."""

    id: Slug
    name: str | None = None
    lead: Slug
    members: list[Slug] = Field(default_factory=list, description="Everyone in the crew.")


_SEPARATORS = re.compile(r"[,/]")
_GROUPING = re.compile(r"[\s|]+")
_CREW_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
CrewDay = dict[str, str | None]
"""Shift name -> crew id (None: nobody from this rotation) for one day of a cycle."""


class Rotation(StrictModel):
    """Crews on the shifts of one calendar, repeating every N days from `anchor` (day 1).

    Write the cycle either as `shifts` + `days` (one entry per day naming the crew of each
    shift in `shifts` order: "AC" = crew a on the first shift, crew c on the second) or as
    `by_shift` (per shift one sequence over the cycle: `day: "AABB AAAB BAAB BB"`). In a string
    each character is a crew (spaces and '|' only group for reading) unless it holds ',' or
    '/', which separate longer crew ids ("a1, c1"); a YAML list holds one crew id per item.
    Ids are compared in lower case; '-' means nobody from this rotation. A shift belongs to the
    day it starts, and days off of the calendar still advance the cycle.
    """

    id: Slug
    calendar: Slug
    anchor: dt.date = Field(description="The first day of the cycle (any cycle start will do).")
    shifts: list[Slug] | None = Field(default=None, description="Shift order of `days` strings.")
    days: list[str | list[str]] | None = None
    by_shift: dict[Slug, str | list[str]] | None = None
    lines: list[Slug] = Field(default_factory=list, description="Line ids this rotation serves.")
    areas: list[str] = Field(default_factory=list, description="'site/area': all its lines.")
    sites: list[Slug] = Field(default_factory=list, description="Site ids: all their lines.")
    _table: tuple[CrewDay, ...] = PrivateAttr(default=())

    @field_validator("days")
    @classmethod
    def _day_strings(
        cls, days: list[str | list[str]] | None, info: ValidationInfo
    ) -> list[str | list[str]] | None:
        shifts = info.data.get("shifts")
        if days is not None and shifts:
            for index, day in enumerate(days):
                _crew_tokens(day, f"days[{index}]", len(shifts))
        return days

    @field_validator("by_shift")
    @classmethod
    def _sequences(
        cls, by_shift: dict[str, str | list[str]] | None
    ) -> dict[str, str | list[str]] | None:
        if by_shift:
            lengths = {
                name: len(_crew_tokens(sequence, f"by_shift.{name}"))
                for name, sequence in by_shift.items()
            }
            if len(set(lengths.values())) > 1:
                raise ValueError(f"the sequences differ in length (days): {lengths}")
        return by_shift

    @model_validator(mode="after")
    def _parse_cycle(self) -> Rotation:
        if (self.days is None) == (self.by_shift is None):
            raise ValueError("give exactly one of 'days' (with 'shifts') or 'by_shift'")
        table: list[CrewDay] = []
        if self.days is not None:
            if not self.shifts:
                raise ValueError("'days' needs 'shifts': the shift order of each day string")
            if len(set(self.shifts)) != len(self.shifts):
                raise ValueError("'shifts' names a shift twice")
            for index, day in enumerate(self.days):
                crews = _crew_tokens(day, f"days[{index}]", len(self.shifts))
                table.append(dict(zip(self.shifts, crews, strict=True)))
        else:
            assert self.by_shift is not None
            if self.shifts is not None:
                raise ValueError("'shifts' goes with 'days'; 'by_shift' names the shifts itself")
            columns = {
                name: _crew_tokens(sequence, f"by_shift.{name}")
                for name, sequence in self.by_shift.items()
            }
            for position in range(min((len(column) for column in columns.values()), default=0)):
                table.append({name: column[position] for name, column in columns.items()})
        if not table:
            raise ValueError("the cycle has no days")
        self._table = tuple(table)
        return self

    @property
    def cycle_days(self) -> int:
        """Length of the cycle in days."""
        return len(self._table)

    def shift_names(self) -> list[str]:
        """The shifts this rotation staffs."""
        return list(self._table[0])

    def crew_ids(self) -> set[str]:
        """Every crew the cycle names."""
        return {crew for day in self._table for crew in day.values() if crew is not None}

    def cycle_day(self, day: dt.date) -> int:
        """0-based position of a calendar day in the cycle (days before `anchor` included)."""
        return (day - self.anchor).days % self.cycle_days

    def crew_on(self, day: dt.date, shift: str) -> str | None:
        """The crew on `shift` started on `day`, or None (nobody, or a shift not in the cycle)."""
        return self._table[self.cycle_day(day)].get(shift)


def _crew_tokens(
    text: str | list[str], what: str, count: int | None = None
) -> tuple[str | None, ...]:
    """Crew ids from a day string or sequence: list items, ','/'/'-separated ids, or characters."""
    if isinstance(text, list):
        tokens = [token.strip() for token in text]
    elif _SEPARATORS.search(text):
        tokens = [token.strip() for token in _SEPARATORS.split(text)]
    else:
        tokens = list(_GROUPING.sub("", text))
    if count is not None and len(tokens) != count:
        raise ValueError(
            f"{what} names {len(tokens)} crews where {count} are expected"
            " (separate crew ids longer than one character with ',')"
        )
    if not tokens:
        raise ValueError(f"{what} names no crew")
    crews = tuple(None if token == "-" else token.lower() for token in tokens)
    bad = [c for c in crews if c is not None and not _CREW_ID.fullmatch(c)]
    if bad:
        raise ValueError(f"{what}: '{bad[0]}' is not a crew id")
    return crews


class Override(StrictModel):
    """A one-off change of lead: sick leave, holiday, a swap (one override per direction).

    When: `date` (shifts started that day, in the line's calendar zone) or `from`/`until`
    (instants; without an offset they are read in the line's calendar zone). Narrowed by
    `shift` and `lines`. Whom: `replaces` a person (the lead the rotation puts there) or a crew
    (whoever leads it), or anyone when left out (then `lines` is required). Overrides replace
    the rotation's lead and never each other; the most specific one that matches wins.
    """

    date: dt.date | None = None
    from_: dt.datetime | None = Field(default=None, alias="from")
    until: dt.datetime | None = Field(default=None, description="Exclusive.")
    shift: Slug | None = None
    lines: list[Slug] = Field(default_factory=list)
    replaces: Slug | None = Field(default=None, description="A person or a crew id.")
    by: Slug = Field(description="The person who leads instead.")
    reason: str | None = Field(default=None, description="Sick leave, swap with ...; for people.")

    @model_validator(mode="after")
    def _when_and_whom(self) -> Override:
        span = self.from_ is not None or self.until is not None
        if (self.date is None) == (not span):
            raise ValueError("give either 'date' or 'from' and 'until'")
        if span:
            if self.from_ is None or self.until is None:
                raise ValueError("give both 'from' and 'until'")
            if (self.from_.tzinfo is None) != (self.until.tzinfo is None):
                raise ValueError("give 'from' and 'until' both with or both without an offset")
            if self.until <= self.from_:
                raise ValueError("'until' must be after 'from'")
        if self.replaces is None and not self.lines:
            raise ValueError("say whom it replaces ('replaces') or where ('lines')")
        return self


class EscalationLevel(StrictModel):
    """A person alerted when nobody acknowledged within `after_minutes` of the alert."""

    person: Slug
    after_minutes: int = Field(gt=0, le=7 * 24 * 60, description="From the alert, not cumulative.")
    name: str | None = Field(
        default=None, description="E.g. 'area manager'; default by scope: line/area/plant manager."
    )


class Escalation(StrictModel):
    """The escalation levels of a site, an area (`site/area`) or a line (`site/area/line`)."""

    scope: str
    levels: list[EscalationLevel] = Field(min_length=1)

    @model_validator(mode="after")
    def _increasing(self) -> Escalation:
        minutes = [level.after_minutes for level in self.levels]
        if any(later <= earlier for earlier, later in itertools.pairwise(minutes)):
            raise ValueError(f"after_minutes must increase level by level (got {minutes})")
        return self

    @property
    def scope_parts(self) -> tuple[str, ...]:
        """The scope split into its asset path levels."""
        return tuple(part for part in self.scope.strip("/").split("/") if part)


class Rosters(StrictModel):
    """People, crews, rotations over shift calendars, overrides and escalation levels."""

    people: list[Person] = Field(min_length=1)
    crews: list[Crew] = Field(default_factory=list)
    rotations: list[Rotation] = Field(default_factory=list)
    overrides: list[Override] = Field(default_factory=list)
    escalation: list[Escalation] = Field(default_factory=list)

    def person(self, person_id: str) -> Person | None:
        """The person with this id, or None."""
        return next((p for p in self.people if p.id == person_id), None)

    def crew(self, crew_id: str) -> Crew | None:
        """The crew with this id, or None."""
        return next((c for c in self.crews if c.id == crew_id), None)

    def rotation_for(self, site: str, area: str, line: str) -> Rotation | None:
        """The rotation serving a line: one naming the line, else its area, else its site."""
        by_level = (
            [r for r in self.rotations if line in r.lines],
            [r for r in self.rotations if f"{site}/{area}" in r.areas],
            [r for r in self.rotations if site in r.sites],
        )
        return next((found[0] for found in by_level if found), None)

    def escalation_for(self, site: str, area: str, line: str) -> list[tuple[str, EscalationLevel]]:
        """(level name, level) of the line's, then its area's, then its site's escalation."""
        chain: list[tuple[str, EscalationLevel]] = []
        for scope, default in (
            ((site, area, line), "line manager"),
            ((site, area), "area manager"),
            ((site,), "plant manager"),
        ):
            for policy in self.escalation:
                if policy.scope_parts == scope:
                    chain += [(level.name or default, level) for level in policy.levels]
        return chain


def roster_problems(plant: Plant) -> list[Problem]:
    """Every reference of `plant.rosters` that names nothing, each at its key path."""
    rosters = plant.rosters
    if rosters is None:
        return []
    checker = _Checker(plant, rosters)
    return checker.problems()


class _Checker:
    """Cross-reference checks of one plant's rosters (see `roster_problems`)."""

    def __init__(self, plant: Plant, rosters: Rosters) -> None:
        self.plant = plant
        self.rosters = rosters
        self.people = {p.id for p in rosters.people}
        self.crews = {c.id for c in rosters.crews}
        self.lines = {placed.line.id: placed for placed in plant.lines()}
        self.areas = {f"{p.site.id}/{p.area.id}" for p in self.lines.values()}
        self.sites = {site.id for site in plant.sites}

    def problems(self) -> list[Problem]:
        found = list(self._ids())
        for ci, crew in enumerate(self.rosters.crews):
            at: KeyPath = ("rosters", "crews", ci)
            found += self._person((*at, "lead"), crew.lead)
            for mi, member in enumerate(crew.members):
                found += self._person((*at, "members", mi), member)
        for ri, rotation in enumerate(self.rosters.rotations):
            found += self._rotation(("rosters", "rotations", ri), rotation)
        found += self._assignments()
        for oi, override in enumerate(self.rosters.overrides):
            found += self._override(("rosters", "overrides", oi), override)
        found += self._escalation()
        return found

    def _ids(self) -> Iterator[Problem]:
        seen: set[str] = set()
        ids = [("people", i, p.id) for i, p in enumerate(self.rosters.people)]
        ids += [("crews", i, c.id) for i, c in enumerate(self.rosters.crews)]
        for kind, index, item_id in ids:
            if item_id in seen:
                yield (
                    ("rosters", kind, index, "id"),
                    f"'{item_id}' is used twice (people and crews share one set of ids)",
                )
            seen.add(item_id)
        rotations: set[str] = set()
        for index, rotation in enumerate(self.rosters.rotations):
            if rotation.id in rotations:
                yield ("rosters", "rotations", index, "id"), f"'{rotation.id}' is used twice"
            rotations.add(rotation.id)

    def _person(self, path: KeyPath, person_id: str) -> list[Problem]:
        if person_id in self.people:
            return []
        return [(path, f"no person '{person_id}' in rosters.people")]

    def _rotation(self, at: KeyPath, rotation: Rotation) -> list[Problem]:
        found: list[Problem] = []
        calendar = self.plant.shift_calendars.get(rotation.calendar)
        if calendar is None:
            known = ", ".join(sorted(self.plant.shift_calendars))
            found.append(((*at, "calendar"), f"no shift calendar '{rotation.calendar}' ({known})"))
        else:
            have = [shift.name for shift in calendar.shifts]
            unknown = [name for name in rotation.shift_names() if name not in have]
            for name in unknown:
                index = rotation.shift_names().index(name)
                path = (*at, "shifts", index) if rotation.shifts else (*at, "by_shift", name)
                found.append(
                    (path, f"calendar '{rotation.calendar}' has no shift '{name}' ({have})")
                )
            missing = [name for name in have if name not in rotation.shift_names()]
            if missing and not unknown:  # a misspelt name is one problem, not two
                found.append(
                    (
                        (*at, "shifts" if rotation.shifts else "by_shift"),
                        f"says nobody about shift '{missing[0]}' of calendar"
                        f" '{rotation.calendar}' (write '-' for no lead)",
                    )
                )
        for crew in sorted(rotation.crew_ids() - self.crews):
            known = ", ".join(sorted(self.crews)) or "none"
            found.append(
                ((*at, "days" if rotation.days else "by_shift"), f"no crew '{crew}' ({known})")
            )
        for index, line in enumerate(rotation.lines):
            if line not in self.lines:
                found.append(((*at, "lines", index), f"no line '{line}' in the plant"))
        for index, area in enumerate(rotation.areas):
            if area not in self.areas:
                found.append(((*at, "areas", index), f"no area '{area}' (write 'site/area')"))
        for index, site in enumerate(rotation.sites):
            if site not in self.sites:
                found.append(((*at, "sites", index), f"no site '{site}' in the plant"))
        return found

    def _assignments(self) -> list[Problem]:
        """One rotation per line and level, over the calendar the line uses."""
        found: list[Problem] = []
        for kind in ("lines", "areas", "sites"):
            claimed: dict[str, str] = {}
            for ri, rotation in enumerate(self.rosters.rotations):
                for index, target in enumerate(getattr(rotation, kind)):
                    other = claimed.setdefault(target, rotation.id)
                    if other != rotation.id:
                        found.append(
                            (
                                ("rosters", "rotations", ri, kind, index),
                                f"'{target}' is served by rotation '{other}' already",
                            )
                        )
        for line_id, placed in self.lines.items():
            serving = self.rosters.rotation_for(placed.site.id, placed.area.id, line_id)
            if serving is None or serving.calendar not in self.plant.shift_calendars:
                continue  # no rotation, or its unknown calendar is reported already
            if serving.calendar == placed.line.shift_calendar:
                continue
            ri = self.rosters.rotations.index(serving)
            found.append(
                (
                    ("rosters", "rotations", ri, "calendar"),
                    f"serves line '{line_id}', whose shift calendar is"
                    f" '{placed.line.shift_calendar}', not '{rotation.calendar}'",
                )
            )
        return found

    def _override(self, at: KeyPath, override: Override) -> list[Problem]:
        found = self._person((*at, "by"), override.by)
        if override.replaces is not None and override.replaces not in self.people | self.crews:
            found.append(((*at, "replaces"), f"no person or crew '{override.replaces}' in rosters"))
        calendars = set()
        for index, line in enumerate(override.lines):
            if line in self.lines:
                calendars.add(self.lines[line].line.shift_calendar)
            else:
                found.append(((*at, "lines", index), f"no line '{line}' in the plant"))
        if override.shift is not None:
            names = calendars or set(self.plant.shift_calendars)
            shifts = {
                shift.name
                for name in names
                if name in self.plant.shift_calendars
                for shift in self.plant.shift_calendars[name].shifts
            }
            if override.shift not in shifts:
                found.append(
                    ((*at, "shift"), f"no shift '{override.shift}' ({', '.join(sorted(shifts))})")
                )
        return found

    def _escalation(self) -> list[Problem]:
        found: list[Problem] = []
        scopes: dict[tuple[str, ...], int] = {}
        for ei, policy in enumerate(self.rosters.escalation):
            at: KeyPath = ("rosters", "escalation", ei)
            parts = policy.scope_parts
            if scopes.setdefault(parts, ei) != ei:
                found.append(((*at, "scope"), f"'{policy.scope}' has escalation levels already"))
            if not self._scope_exists(parts):
                found.append(
                    (
                        (*at, "scope"),
                        f"'{policy.scope}' is no site, site/area or site/area/line of the plant",
                    )
                )
            for li, level in enumerate(policy.levels):
                found += self._person((*at, "levels", li, "person"), level.person)
        order: dict[KeyPath, str] = {}
        for line_id, placed in self.lines.items():
            chain = self.rosters.escalation_for(placed.site.id, placed.area.id, line_id)
            for (name, earlier), (_, later) in itertools.pairwise(chain):
                if later.after_minutes <= earlier.after_minutes:
                    order.setdefault(
                        self._level_path(later),
                        f"for line '{line_id}' this level ({later.after_minutes} min) comes"
                        f" after '{name}' ({earlier.after_minutes} min): after_minutes must"
                        " grow from line to area to site",
                    )
        return found + list(order.items())

    def _scope_exists(self, parts: tuple[str, ...]) -> bool:
        return (
            any(
                (p.site.id, p.area.id, p.line.id)[: len(parts)] == parts
                for p in self.lines.values()
            )
            and 1 <= len(parts) <= 3
        )

    def _level_path(self, level: EscalationLevel) -> KeyPath:
        for ei, policy in enumerate(self.rosters.escalation):
            for li, candidate in enumerate(policy.levels):
                if candidate is level:
                    return ("rosters", "escalation", ei, "levels", li, "after_minutes")
        return ("rosters", "escalation")
