"""Roster resolution with a fake clock: rotations, shift changes, midnight, DST, overrides,
escalation, and located errors for references to nothing."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path
from typing import Any

import apprise
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.alerts.roster import LEAD_LEVEL, escalation_chain, lead_on_duty
from taktline.cli import main
from taktline.config import ConfigError, load_plant
from taktline.model import Plant
from taktline.model.rosters import ContactChannel, Rotation
from tests.conftest import REPO

EXAMPLE = REPO / "examples" / "rosters.yaml"
EXAMPLE_TEXT = EXAMPLE.read_text(encoding="utf-8")
DOCS = REPO / "docs" / "rosters.md"
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
ANCHOR = dt.date(2026, 1, 5)
LEADS = {"a": "anna", "b": "ben", "c": "clara", "d": "deniz"}
US = dt.timedelta(microseconds=1)


def berlin(day: dt.date, hour: int, minute: int = 0, fold: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN, fold=fold)


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)


def panama_schedule() -> dict[tuple[int, str], str]:
    """(cycle day 0..27, shift) -> crew, from the 2-2-3 rule rather than the file's strings.

    Crew A works the day shift on the "on" days of 2-2-3 (on 2, off 2, on 3, off 2, on 2,
    off 3) for 14 days, then the night shift on the same pattern; B works exactly A's off
    days; C and D do the same a half cycle later, so C starts on nights.
    """
    on = [n for n, length in enumerate([2, 2, 3, 2, 2, 3]) for _ in range(length)]
    works: dict[str, set[tuple[int, str]]] = {crew: set() for crew in "abcd"}
    for day in range(28):
        half, position = divmod(day, 14)
        first_pattern = on[position] % 2 == 0  # blocks 0, 2, 4 are "on" for A and C
        a_shift, c_shift = ("day", "night") if half == 0 else ("night", "day")
        works["a" if first_pattern else "b"].add((day, a_shift))
        works["c" if first_pattern else "d"].add((day, c_shift))
    schedule: dict[tuple[int, str], str] = {}
    for crew, shifts in works.items():
        assert len(shifts) == 14  # everyone works half of the shifts of a cycle
        for key in shifts:
            assert key not in schedule, key
            schedule[key] = crew
    return schedule


SCHEDULE = panama_schedule()


def expected_lead(day: dt.date, shift: str) -> str:
    return LEADS[SCHEDULE[((day - ANCHOR).days % 28, shift)]]


@pytest.fixture(scope="module")
def plant() -> Plant:
    return load_plant(EXAMPLE)


def with_rosters(plant: Plant, **changes: Any) -> Plant:
    """The example plant with some roster lists replaced (validated like a file)."""
    assert plant.rosters is not None
    data = plant.rosters.model_dump(by_alias=True, exclude_none=True)
    data.update(changes)
    rosters = type(plant.rosters).model_validate(data)
    return plant.model_copy(update={"rosters": rosters})


def lead_id(plant: Plant, line: str, now: dt.datetime) -> str | None:
    on_duty = lead_on_duty(plant, line, now)
    return None if on_duty is None else on_duty.person.id


@pytest.mark.parametrize(
    "cycle_start", [ANCHOR - dt.timedelta(days=28), ANCHOR, dt.date(2026, 10, 12)]
)
def test_panama_rotation_over_a_whole_cycle(plant: Plant, cycle_start: dt.date) -> None:
    assert (cycle_start - ANCHOR).days % 28 == 0
    for offset in range(28):
        day = cycle_start + dt.timedelta(days=offset)
        crews = (SCHEDULE[(offset, "day")], SCHEDULE[(offset, "night")])
        noon = lead_on_duty(plant, "fa1", berlin(day, 12))
        evening = lead_on_duty(plant, "fa1", berlin(day, 23))
        assert noon is not None and evening is not None
        assert (noon.crew and noon.crew.id, evening.crew and evening.crew.id) == crews, day
        assert (noon.person.id, evening.person.id) == (LEADS[crews[0]], LEADS[crews[1]])
        assert noon.source == evening.source == "rotation"
        assert noon.shift_day == evening.shift_day == day
        assert lead_id(plant, "fa2", berlin(day, 12)) == LEADS[crews[0]]  # the area's rotation


def test_day_strings_and_per_shift_sequences_mean_the_same(plant: Plant) -> None:
    days = Rotation.model_validate(
        {"id": "r", "calendar": "c", "anchor": ANCHOR, "shifts": ["day", "night"],
         "days": ["AC", "a/c", ["b", "d"], "-D"]}
    )  # fmt: skip
    by_shift = Rotation.model_validate(
        {"id": "r", "calendar": "c", "anchor": ANCHOR,
         "by_shift": {"day": "AA B-", "night": "c, c, d, d"}}
    )  # fmt: skip
    for offset in range(8):
        day = ANCHOR + dt.timedelta(days=offset)
        for shift in ("day", "night"):
            assert days.crew_on(day, shift) == by_shift.crew_on(day, shift)
    assert days.crew_on(ANCHOR + dt.timedelta(days=3), "day") is None
    assert days.crew_on(ANCHOR - dt.timedelta(days=1), "night") == "d"  # before the anchor
    assert days.cycle_days == by_shift.cycle_days == 4


def test_the_documented_per_shift_panama_is_the_example_cycle(plant: Plant) -> None:
    assert plant.rosters is not None
    example = plant.rosters.rotations[0]
    documented = Rotation.model_validate(
        {"id": "p", "calendar": "twelve-hour", "anchor": ANCHOR, "by_shift": {
            "day": "AABBAAA BBAABBB | CCDDCCC DDCCDDD",
            "night": "CCDDCCC DDCCDDD | AABBAAA BBAABBB"}}
    )  # fmt: skip
    assert 'day:   "AABBAAA BBAABBB | CCDDCCC DDCCDDD"' in DOCS.read_text(encoding="utf-8")
    for offset in range(28):
        day = ANCHOR + dt.timedelta(days=offset)
        for shift in ("day", "night"):
            assert (
                documented.crew_on(day, shift)
                == example.crew_on(day, shift)
                == SCHEDULE[(offset, shift)]
            )


def test_lead_just_before_and_at_a_shift_change(plant: Plant) -> None:
    day = dt.date(2026, 1, 7)  # cycle day 2 (from 0): crews B (day) and D (night)
    before = lead_on_duty(plant, "fa1", berlin(day, 18) - US)
    at = lead_on_duty(plant, "fa1", berlin(day, 18))
    assert before is not None and at is not None
    assert (before.person.id, before.shift.name) == ("ben", "day")
    assert (at.person.id, at.shift.name) == ("deniz", "night")
    assert before.shift.end == at.shift.start == berlin(day, 18)  # the end is exclusive
    next_morning = day + dt.timedelta(days=1)
    assert lead_id(plant, "fa1", berlin(next_morning, 6) - US) == "deniz"
    assert lead_id(plant, "fa1", berlin(next_morning, 6)) == expected_lead(next_morning, "day")


def test_night_shift_over_midnight_belongs_to_the_day_it_started(plant: Plant) -> None:
    day = dt.date(2026, 1, 8)  # cycle day 3 (from 0): B, D; the next day A, C
    assert expected_lead(day, "night") != expected_lead(day + dt.timedelta(days=1), "night")
    for hour, minute, later in [(23, 59, 0), (0, 0, 1), (3, 30, 1), (5, 59, 1)]:
        now = berlin(day + dt.timedelta(days=later), hour, minute)
        on_duty = lead_on_duty(plant, "fa1", now)
        assert on_duty is not None
        assert on_duty.person.id == expected_lead(day, "night") == "deniz"
        assert on_duty.shift_day == day
        assert on_duty.shift.start == berlin(day, 18)
        assert on_duty.shift.end == berlin(day + dt.timedelta(days=1), 6)


def test_spring_dst_night_is_an_hour_shorter_and_keeps_its_lead(plant: Plant) -> None:
    night_of = dt.date(2026, 3, 28)  # clocks go 02:00 CET -> 03:00 CEST on 29 March
    lead = expected_lead(night_of, "night")
    for now in (
        utc(2026, 3, 28, 17),
        utc(2026, 3, 29, 0, 59),
        utc(2026, 3, 29, 1),
        utc(2026, 3, 29, 3, 59),
    ):
        on_duty = lead_on_duty(plant, "fa1", now)
        assert on_duty is not None and on_duty.person.id == lead, now
        assert on_duty.shift_day == night_of
        assert on_duty.shift.end - on_duty.shift.start == dt.timedelta(hours=11)
    morning = lead_on_duty(plant, "fa1", utc(2026, 3, 29, 4))  # 06:00 CEST
    assert morning is not None and morning.shift.name == "day"
    assert morning.person.id == expected_lead(dt.date(2026, 3, 29), "day")
    assert morning.shift.end - morning.shift.start == dt.timedelta(hours=12)


def test_autumn_dst_night_is_an_hour_longer_and_keeps_its_lead(plant: Plant) -> None:
    night_of = dt.date(2026, 10, 24)  # clocks go 03:00 CEST -> 02:00 CET on 25 October
    lead = expected_lead(night_of, "night")
    first_0230 = berlin(dt.date(2026, 10, 25), 2, 30, fold=0)
    second_0230 = berlin(dt.date(2026, 10, 25), 2, 30, fold=1)
    assert second_0230.astimezone(dt.UTC) - first_0230.astimezone(dt.UTC) == dt.timedelta(hours=1)
    for now in (utc(2026, 10, 24, 16), first_0230, second_0230, utc(2026, 10, 25, 5) - US):
        on_duty = lead_on_duty(plant, "fa1", now)
        assert on_duty is not None and on_duty.person.id == lead, now
        assert on_duty.shift_day == night_of
        assert on_duty.shift.end - on_duty.shift.start == dt.timedelta(hours=13)
    morning = lead_on_duty(plant, "fa1", utc(2026, 10, 25, 5))  # 06:00 CET
    assert morning is not None and morning.shift.name == "day"
    assert morning.person.id == expected_lead(dt.date(2026, 10, 25), "day")


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=dt.datetime(2025, 12, 1), max_value=dt.datetime(2027, 2, 1)))
def test_every_instant_has_exactly_one_lead_for_its_whole_shift(moment: dt.datetime) -> None:
    plant = load_plant(EXAMPLE)  # hypothesis and function-scoped fixtures do not mix
    now = moment.replace(tzinfo=dt.UTC)
    on_duty = lead_on_duty(plant, "fa1", now)
    assert on_duty is not None  # 24/7: somebody always leads fa1
    window = on_duty.shift
    assert window.contains(now)
    assert window.start.astimezone(BERLIN).date() == on_duty.shift_day
    for inside in (window.start, window.end - US):
        same = lead_on_duty(plant, "fa1", inside)
        assert same is not None and same.person == on_duty.person and same.shift == window
    following = lead_on_duty(plant, "fa1", window.end)
    assert following is not None and following.shift.start == window.end  # no gap, no overlap
    if on_duty.override is None:
        assert on_duty.person.id == expected_lead(on_duty.shift_day, window.name)


def test_sick_leave_for_one_day(plant: Plant) -> None:
    sick = dt.date(2026, 3, 2)  # cycle day 0: anna (day), clara (night)
    for line in ("fa1", "fa2"):
        on_duty = lead_on_duty(plant, line, berlin(sick, 9))
        assert on_duty is not None
        assert (on_duty.person.id, on_duty.source) == ("emil", "override")
        assert on_duty.crew is not None and on_duty.crew.id == "a"
        assert "sick leave" in on_duty.reason() and "anna" in on_duty.reason()
    assert lead_id(plant, "fa1", berlin(sick, 20)) == "clara"  # the override names anna only
    assert lead_id(plant, "fa1", berlin(sick - dt.timedelta(days=28), 9)) == "anna"
    assert lead_id(plant, "paint1", berlin(sick, 9)) == "hanna"  # other rotation, untouched


def test_swap_exchanges_one_shift_each_way_without_chaining(plant: Plant) -> None:
    day = dt.date(2026, 3, 3)  # cycle day 1: anna (day), clara (night)
    assert (expected_lead(day, "day"), expected_lead(day, "night")) == ("anna", "clara")
    day_shift = lead_on_duty(plant, "fa1", berlin(day, 10))
    night_shift = lead_on_duty(plant, "fa1", berlin(day, 22))
    assert day_shift is not None and night_shift is not None
    assert (day_shift.person.id, night_shift.person.id) == ("clara", "anna")
    assert day_shift.override is not None and day_shift.override.reason == "swap with Clara"
    assert lead_id(plant, "fa1", berlin(day + dt.timedelta(days=1), 3)) == "anna"


def test_override_for_part_of_a_shift_on_one_line(plant: Plant) -> None:
    day = dt.date(2026, 3, 20)  # clara leads the day shift; fatma stands in 10:00-14:00 on fa2
    assert lead_id(plant, "fa2", berlin(day, 10) - US) == "clara"
    assert lead_id(plant, "fa2", berlin(day, 10)) == "fatma"
    assert lead_id(plant, "fa2", berlin(day, 14) - US) == "fatma"
    assert lead_id(plant, "fa2", berlin(day, 14)) == "clara"
    assert lead_id(plant, "fa1", berlin(day, 11)) == "clara"


def test_the_most_specific_override_wins(plant: Plant) -> None:
    day = dt.date(2026, 1, 5)  # anna leads the day shift
    overrides = [
        {"from": "2026-01-05T11:00:00+01:00", "until": "2026-01-05T12:00:00+01:00",
         "lines": ["fa1"], "shift": "day", "replaces": "anna", "by": "georg"},
        {"date": day, "lines": ["fa1"], "shift": "day", "replaces": "anna", "by": "ben"},
        {"date": day, "replaces": "anna", "by": "emil"},
        {"date": day, "replaces": "a", "by": "ivo"},  # same rank as emil's, later: wins
    ]  # fmt: skip
    changed = with_rosters(plant, overrides=overrides)
    assert lead_id(changed, "fa2", berlin(day, 9)) == "ivo"
    assert lead_id(changed, "fa1", berlin(day, 9)) == "ben"  # line + shift beat date only
    assert lead_id(changed, "fa1", berlin(day, 11, 30)) == "georg"  # an hour beats a day


def test_override_without_replaces_names_the_lead_of_a_line(plant: Plant) -> None:
    day = dt.date(2026, 1, 10)  # a Saturday: no paint shift, the rotation names nobody
    assert lead_on_duty(plant, "paint1", berlin(day, 9)) is None
    changed = with_rosters(
        plant,
        overrides=[
            {"date": dt.date(2026, 1, 9), "shift": "late", "lines": ["paint1"], "by": "jana"}
        ],
    )
    assert lead_id(changed, "paint1", berlin(dt.date(2026, 1, 9), 15)) == "jana"
    assert lead_id(changed, "paint1", berlin(dt.date(2026, 1, 9), 9)) == "hanna"


def test_no_shift_running_means_no_lead_but_the_escalation_levels_remain(plant: Plant) -> None:
    labour_day = dt.date(2026, 5, 1)  # a Friday, a day off of the paint shop's calendar
    assert lead_on_duty(plant, "paint1", berlin(labour_day, 9)) is None
    assert lead_on_duty(plant, "paint1", berlin(dt.date(2026, 4, 30), 22)) is None  # after late
    assert lead_id(plant, "paint1", berlin(dt.date(2026, 4, 30), 22) - US) == "ivo"
    chain = escalation_chain(plant, "paint1", berlin(labour_day, 9))
    assert [(level.name, level.person.id, level.after_minutes) for level in chain] == [
        ("area manager", "jana", 20),
        ("plant manager", "georg", 45),
    ]


def test_escalation_chain_goes_from_lead_to_area_to_plant(plant: Plant) -> None:
    now = berlin(dt.date(2026, 1, 5), 12)
    chain = escalation_chain(plant, "fa1", now)
    assert [(level.name, level.person.id, level.after_minutes) for level in chain] == [
        (LEAD_LEVEL, "anna", 0),
        ("area manager", "fatma", 15),
        ("plant manager", "georg", 45),
    ]
    line_level = [
        {"scope": "neustadt/final/fa1", "levels": [{"person": "emil", "after_minutes": 5}]}
    ]
    assert plant.rosters is not None
    escalation = [*line_level, *plant.rosters.model_dump()["escalation"]]
    changed = with_rosters(plant, escalation=escalation)
    assert [level.name for level in escalation_chain(changed, "fa1", now)] == [
        LEAD_LEVEL, "line manager", "area manager", "plant manager"
    ]  # fmt: skip
    assert [level.name for level in escalation_chain(changed, "fa2", now)] == [
        LEAD_LEVEL, "area manager", "plant manager"
    ]  # fmt: skip


def test_a_manager_standing_in_is_not_alerted_twice(plant: Plant) -> None:
    chain = escalation_chain(plant, "fa2", berlin(dt.date(2026, 3, 20), 11))
    assert [(level.name, level.person.id) for level in chain] == [
        (LEAD_LEVEL, "fatma"),
        ("plant manager", "georg"),
    ]


def test_unknown_line_and_naive_time_are_errors(plant: Plant) -> None:
    with pytest.raises(ValueError, match="no line 'fa9'"):
        lead_on_duty(plant, "fa9", utc(2026, 1, 5, 12))
    with pytest.raises(ValueError, match="aware"):
        lead_on_duty(plant, "fa1", dt.datetime(2026, 1, 5, 12))


def test_a_plant_without_rosters_has_nobody_on_duty(plant: Plant) -> None:
    bare = plant.model_copy(update={"rosters": None})
    assert lead_on_duty(bare, "fa1", utc(2026, 1, 5, 12)) is None
    assert escalation_chain(bare, "fa1", utc(2026, 1, 5, 12)) == []


def test_example_channels_are_addresses_or_urls_apprise_loads(
    plant: Plant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NTFY_USER", "taktline")
    monkeypatch.setenv("NTFY_PASSWORD", "p@ss/word")
    monkeypatch.setenv(
        "FATMA_SLACK_URL", "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#qa"
    )
    assert plant.rosters is not None
    kinds = set()
    for person in plant.rosters.people:
        for channel in person.channels:
            kinds.add(channel.kind)
            if channel.kind == "apprise":
                assert apprise.Apprise.instantiate(channel.reveal()) is not None, channel
    assert kinds == {"email", "apprise"}
    ntfy = plant.rosters.people[0].channels[1]
    assert ntfy.reveal() == "ntfys://taktline:p%40ss%2Fword@ntfy.neustadt.example/fa-leads"
    assert "p@ss" not in repr(plant.rosters) and "TIiajkdnlazkcOXrIdevi7FQ" not in repr(
        plant.rosters
    )
    assert repr(ntfy) == "ContactChannel(ntfys://ntfy.neustadt.example/…)"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mailto://lead:hunter2@smtp.example.com", "never written inline"),
        ("json://hooks.example.com/x?token=hunter2", "never written inline"),
        ("msteams://hunter2/tokenB/tokenC/", "never written inline"),
        ({"url": "ntfys://{user}@ntfy.example.com/x"}, "placeholders without a secret: user"),
        ({"url": "anna@example.com", "secrets": {"x": {"env": "X"}}}, "takes no 'secrets'"),
        ("not a channel", "apprise URL"),
    ],
)
def test_channels_refuse_inline_secrets_and_unknown_forms(spec: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        ContactChannel.model_validate(spec)
    assert "hunter2" not in str(caught.value)


def test_schema_of_the_plant_describes_rosters() -> None:
    schema = Plant.model_json_schema()
    assert "Rosters" in schema["$defs"]
    assert "from" in schema["$defs"]["Override"]["properties"]


BROKEN = [
    pytest.param(
        "{id: b, name: Crew B, lead: ben,", "{id: b, name: Crew B, lead: bea,", "lead: bea",
        "rosters.crews[1].lead", "no person 'bea'", id="unknown-person",
    ),
    pytest.param(
        "CA, CA, DB, DB, CA, CA, CA,", "CA, CA, DB, DB, CA, CX, CA,", "days: [AC",
        "rosters.rotations[0].days", "no crew 'x' (a, b, c, d, e, f)", id="unknown-crew",
    ),
    pytest.param(
        "      lines: [paint1]\n      by_shift", "      lines: [paint9]\n      by_shift",
        "lines: [paint9]", "rosters.rotations[1].lines[0]", "no line 'paint9'", id="unknown-line",
    ),
    pytest.param(
        "      calendar: two-shift\n      anchor", "      calendar: two-shifts\n      anchor",
        "calendar: two-shifts", "rosters.rotations[1].calendar", "no shift calendar 'two-shifts'",
        id="unknown-calendar",
    ),
    pytest.param(
        '        late:  "FFFFFFF', '        lat:  "FFFFFFF', "lat:",
        "rosters.rotations[1].by_shift.lat", "has no shift 'lat'", id="unknown-shift-name",
    ),
    pytest.param(
        "shifts: [day, night]\n      days:", "shifts: [day, nights]\n      days:",
        "shifts: [day, nights]", "rosters.rotations[0].shifts[1]", "has no shift 'nights'",
        id="rotation-shift-name",
    ),
    pytest.param(
        "shift: night, replaces: clara, by: anna", "shift: nite, replaces: clara, by: anna",
        "shift: nite", "rosters.overrides[2].shift", "no shift 'nite'", id="override-shift",
    ),
    pytest.param(
        "replaces: anna, by: emil, reason: sick", "replaces: anna, by: emilia, reason: sick",
        "by: emilia", "rosters.overrides[0].by", "no person 'emilia'", id="override-person",
    ),
    pytest.param(
        "replaces: anna, by: clara", "replaces: crew-z, by: clara", "crew-z",
        "rosters.overrides[1].replaces", "no person or crew 'crew-z'", id="override-replaces",
    ),
    pytest.param(
        "    - scope: neustadt/paint\n", "    - scope: neustadt/body\n", "scope: neustadt/body",
        "rosters.escalation[1].scope", "'neustadt/body' is no site", id="escalation-scope",
    ),
    pytest.param(
        "person: georg, after_minutes: 45", "person: gorg, after_minutes: 45", "person: gorg",
        "rosters.escalation[2].levels[0].person", "no person 'gorg'", id="escalation-person",
    ),
    pytest.param(
        "person: georg, after_minutes: 45", "person: georg, after_minutes: 10", "after_minutes: 10",
        "rosters.escalation[2].levels[0].after_minutes", "must grow from line to area to site",
        id="escalation-order",
    ),
    pytest.param(
        "    - {id: jana, name: Jana Keller, channels: [jana.keller@neustadt.example]}\n",
        "    - {id: jana, name: Jana Keller, channels: [jana.keller@neustadt.example]}\n"
        "    - {id: a, name: Alex, channels: [alex@neustadt.example]}\n",
        "{id: a, name: Crew A", "rosters.crews[0].id", "'a' is used twice",
        id="crew-id-is-a-person",
    ),
    pytest.param(
        "      lines: [paint1]\n      by_shift", "      lines: [fa1]\n      by_shift",
        "      calendar: two-shift", "rosters.rotations[1].calendar",
        "serves line 'fa1', whose shift calendar is 'twelve-hour'", id="calendar-mismatch",
    ),
    pytest.param(
        "      days: [AC, AC,", "      days: [ACB, AC,", "days: [ACB",
        "rosters.rotations[0].days", "days[0] names 3 crews where 2 are expected", id="day-string",
    ),
    pytest.param(
        '          secrets: {user: {env: NTFY_USER}, password: {env: NTFY_PASSWORD}}\n',
        '          secrets: {user: {env: NTFY_USER}}\n', 'url: "ntfys://',
        "rosters.people[0].channels[1]", "placeholders without a secret: password",
        id="channel-placeholder",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "needle", "key_path", "message"), BROKEN)
def test_broken_rosters_get_located_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    old: str,
    new: str,
    needle: str,
    key_path: str,
    message: str,
) -> None:
    assert EXAMPLE_TEXT.count(old) == 1, old
    file = tmp_path / "plant.yaml"
    file.write_text(EXAMPLE_TEXT.replace(old, new), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_plant(file)
    assert len(caught.value.issues) == 1, caught.value.issues
    issue = caught.value.issues[0]
    assert (issue.key_path, issue.line) == (key_path, _line_with(file, needle))
    assert message in issue.message
    assert main(["check-config", str(file)]) == 2
    assert f"{key_path}:" in capsys.readouterr().err


def test_inline_password_in_a_channel_is_not_repeated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = "    - {id: ben, name: Ben Schulz, channels: [ben.schulz@neustadt.example]}"
    new = '    - {id: ben, name: Ben Schulz, channels: ["mailto://ben:hunter2@mail.example"]}'
    file = tmp_path / "plant.yaml"
    file.write_text(EXAMPLE_TEXT.replace(old, new), encoding="utf-8")
    assert main(["check-config", str(file)]) == 2
    err = capsys.readouterr().err
    assert f"{file}:{_line_with(file, 'hunter2')}: rosters.people[1].channels[0]:" in err
    assert "never written inline" in err and "hunter2" not in err


def _line_with(file: Path, needle: str) -> int:
    lines = file.read_text(encoding="utf-8").splitlines()
    found = [number for number, text in enumerate(lines, 1) if needle in text]
    assert len(found) == 1, (needle, found)
    return found[0]
