"""Alert rules on a fake clock: exact minimum durations, hysteresis, shifts and breaks, dedup."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from server.alerts.rules import AlertEvaluator
from server.alerts.signals import EdgeBacklog, LineSignals, Signals, SourceLink, StationYield
from server.alerts.transitions import Transition
from server.crossings import Crossing
from taktline.config.references import check_plant
from taktline.model import CounterPath, Plant

MONDAY = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)


def at(hour: int, minute: int = 0, second: float = 0, day: int = 0) -> dt.datetime:
    """An instant of the test week (Monday + `day`), in UTC like the test calendars."""
    return MONDAY + dt.timedelta(days=day, hours=hour, minutes=minute, seconds=second)


RULES = (
    "line_stopped",
    "rate_below_target",
    "shift_target_at_risk",
    "yield_below",
    "source_stale",
    "edge_backlog",
    "milestone",
)


def make_plant(alerts: dict[str, Any] | None = None, only: tuple[str, ...] = RULES) -> Plant:
    """Line 1: takt 60 s, early 06-14 (break 09:00-09:15) and late 14-22 back to back.
    Line 2: 400 units per day shift 06-14 (break 10:00-10:30), nothing at night.
    Rules not in `only` are switched off plant-wide."""
    alerts = dict(alerts or {})
    for rule in RULES:
        if rule not in only:
            alerts[rule] = {**alerts.get(rule, {}), "enabled": False}
    plant = Plant.model_validate(
        {
            "name": "Test plant",
            "sites": [
                {
                    "id": "s",
                    "name": "Site",
                    "areas": [
                        {
                            "id": "a",
                            "name": "Area",
                            "lines": [
                                {
                                    "id": "l1",
                                    "name": "Line 1",
                                    "output": "eol/passed",
                                    "target": {"takt_seconds": 60},
                                    "shift_calendar": "two",
                                    "stations": [
                                        {
                                            "id": "eol",
                                            "name": "EOL test",
                                            "counters": [
                                                {"name": "tested"},
                                                {"name": "passed"},
                                                {"name": "failed"},
                                            ],
                                        }
                                    ],
                                },
                                {
                                    "id": "l2",
                                    "name": "Line 2",
                                    "output": "end/produced",
                                    "target": {"units_per_shift": 400},
                                    "shift_calendar": "day",
                                    "stations": [
                                        {
                                            "id": "end",
                                            "name": "End",
                                            "counters": [{"name": "produced"}],
                                        }
                                    ],
                                },
                            ],
                        }
                    ],
                }
            ],
            "shift_calendars": {
                "two": {
                    "timezone": "UTC",
                    "shifts": [
                        {
                            "name": "early",
                            "start": "06:00",
                            "end": "14:00",
                            "breaks": [{"start": "09:00", "end": "09:15"}],
                        },
                        {
                            "name": "late",
                            "start": "14:00",
                            "end": "22:00",
                            "breaks": [{"start": "18:00", "end": "18:30"}],
                        },
                    ],
                },
                "day": {
                    "timezone": "UTC",
                    "shifts": [
                        {
                            "name": "day",
                            "start": "06:00",
                            "end": "14:00",
                            "breaks": [{"start": "10:00", "end": "10:30"}],
                        }
                    ],
                },
            },
            "alerts": alerts,
        }
    )
    assert check_plant(plant) == []
    return plant


@dataclass
class FakeLine:
    """What the server would know of one line; `silent` stops its heartbeat."""

    id: str
    total: int = 10_000
    shift_count: int = 0
    last_unit_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    offline: bool = False
    silent: bool = False
    yields: tuple[StationYield, ...] = ()

    def signals(self) -> LineSignals:
        return LineSignals(
            line=self.id,
            shift_count=self.shift_count,
            output_total=self.total,
            last_unit_at=self.last_unit_at,
            updated_at=self.updated_at,
            offline=self.offline,
            yields=self.yields,
        )


@dataclass
class Sim:
    """The evaluator on a fake clock, fed with fake lines; keeps every transition."""

    plant: Plant
    now: dt.datetime
    fed: tuple[str, ...] = ("l1",)
    """The lines in the signals (the others are not looked at)."""
    evaluator: AlertEvaluator = field(init=False)
    lines: dict[str, FakeLine] = field(init=False)
    edges: list[EdgeBacklog] = field(default_factory=list)
    sources: list[SourceLink] = field(default_factory=list)
    crossings: list[Crossing] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.evaluator = AlertEvaluator(self.plant)
        self.lines = {line: FakeLine(line) for line in self.fed}

    def unit(self, line: str = "l1", count: int = 1) -> None:
        fake = self.lines[line]
        fake.total += count
        fake.shift_count += count
        fake.last_unit_at = self.now

    def evaluate(self) -> list[Transition]:
        for fake in self.lines.values():
            if not fake.silent:
                fake.updated_at = self.now
        signals = Signals(
            lines=tuple(fake.signals() for fake in self.lines.values()),
            edges=tuple(self.edges),
            sources=tuple(self.sources),
            crossings=tuple(self.crossings),
        )
        self.crossings = []
        made = self.evaluator.evaluate(self.now, signals)
        self.transitions += made
        return made

    def step_to(
        self, when: dt.datetime, each: Callable[[Sim], None] | None = None
    ) -> list[Transition]:
        """Move the clock to `when` and evaluate (`each` runs first)."""
        assert when >= self.now
        self.now = when
        if each is not None:
            each(self)
        return self.evaluate()

    def run_until(
        self,
        end: dt.datetime,
        every: dt.timedelta = dt.timedelta(seconds=30),
        each: Callable[[Sim], None] | None = None,
    ) -> list[Transition]:
        """Evaluate every `every` after now, up to and including `end`."""
        made: list[Transition] = []
        while self.now < end:
            made += self.step_to(min(self.now + every, end), each)
        return made


def kinds(transitions: list[Transition]) -> list[tuple[str, str]]:
    return [(t.kind, str(t.key)) for t in transitions]


def every(seconds: float, start: dt.datetime, line: str = "l1") -> Callable[[Sim], None]:
    """An `each` that makes a unit whenever a whole multiple of `seconds` since `start` passed."""
    due = [start]

    def produce(sim: Sim) -> None:
        while due[0] + dt.timedelta(seconds=seconds) <= sim.now:
            due[0] += dt.timedelta(seconds=seconds)
            sim.unit(line)

    return produce


STOP_L1 = "line_stopped:line/l1"
STOPS = ("line_stopped",)


# --- line stopped ---------------------------------------------------------------------------


def test_line_stopped_fires_after_exactly_five_takts_not_before() -> None:
    sim = Sim(make_plant(only=STOPS), at(10))
    sim.unit()
    assert sim.evaluate() == []
    assert sim.run_until(at(10, 4, 59)) == []
    fired = sim.step_to(at(10, 5))
    assert kinds(fired) == [("firing", STOP_L1)]
    alert = fired[0]
    assert alert.message == "Line 1 stopped: no unit for 5 min (takt 60 s)"
    assert alert.severity == "critical"
    assert alert.lines == ("l1",)
    assert alert.values["stopped_s"] == 300
    assert alert.values["takt_s"] == 60


def test_line_stopped_waits_at_least_min_minutes_for_a_fast_takt() -> None:
    plant = make_plant(
        {"lines": {"l1": {"line_stopped": {"after_takts": 2, "clear_takts": 2}}}}, only=STOPS
    )
    sim = Sim(plant, at(10))
    sim.unit()
    assert sim.run_until(at(10, 2, 59)) == []  # 2 takts = 2 min, but min_minutes is 3
    assert kinds(sim.step_to(at(10, 3))) == [("firing", STOP_L1)]


def test_a_break_does_not_count_toward_the_stop() -> None:
    sim = Sim(make_plant(only=STOPS), at(8, 58))
    sim.unit()
    sim.evaluate()
    # 2 productive minutes before the break (09:00-09:15), 3 after it
    assert sim.run_until(at(9, 17, 59)) == []
    fired = sim.step_to(at(9, 18))
    assert kinds(fired) == [("firing", STOP_L1)]
    assert fired[0].values["stopped_s"] == 300


def test_time_outside_shifts_and_before_the_shift_start_does_not_count() -> None:
    # Line 2: takt 27,000 s / 400 = 67.5 s, so 5 takts = 337.5 s
    sim = Sim(make_plant(only=STOPS), at(13, 58), fed=("l2",))
    sim.unit("l2")
    sim.evaluate()
    assert sim.run_until(at(5, 59, day=1), every=dt.timedelta(minutes=10)) == []
    assert sim.run_until(at(6, 5, 37, day=1)) == []
    fired = sim.step_to(at(6, 5, 38, day=1))
    assert kinds(fired) == [("firing", "line_stopped:line/l2")]
    assert fired[0].message == "Line 2 stopped: no unit for 6 min (takt 67.5 s)"


def test_a_stop_going_on_over_a_shift_change_keeps_counting_and_fires_once() -> None:
    sim = Sim(make_plant(only=STOPS), at(13, 57))
    sim.unit()
    sim.evaluate()
    assert sim.run_until(at(14, 1, 59)) == []
    assert kinds(sim.step_to(at(14, 2))) == [("firing", STOP_L1)]
    assert sim.run_until(at(15)) == []  # neither a second firing nor a resolve at 14:00


def test_a_firing_stop_resolves_when_the_shift_ends_without_a_next_one() -> None:
    sim = Sim(make_plant(only=STOPS), at(13, 40), fed=("l2",))
    sim.unit("l2")
    sim.evaluate()
    assert kinds(sim.run_until(at(13, 59, 30))) == [("firing", "line_stopped:line/l2")]
    resolved = sim.step_to(at(14))
    assert kinds(resolved) == [("resolved", "line_stopped:line/l2")]
    assert resolved[0].message == "Line 2: no shift running, alert closed"


def test_a_stop_flapping_around_the_threshold_fires_once_and_resolves_once() -> None:
    sim = Sim(make_plant(only=STOPS), at(10))
    sim.unit()
    sim.evaluate()
    # a unit every 5.5 min: stopped past 5 takts, then one unit, again and again
    sim.run_until(at(11), each=every(330, at(10)))
    assert kinds(sim.transitions) == [("firing", STOP_L1)]
    # running at takt again from 11:01: resolved once that held 3 takts (more than 2 min)
    steady = every(60, at(11))
    sim.run_until(at(11, 3, 30), each=steady)
    assert kinds(sim.transitions) == [("firing", STOP_L1)]
    resolved = sim.step_to(at(11, 4), each=steady)
    assert kinds(resolved) == [("resolved", STOP_L1)]
    assert resolved[0].message == "Line 1 running again: last unit 0 s ago"
    sim.run_until(at(12), each=steady)
    assert len(sim.transitions) == 2


def test_the_same_rule_and_scope_never_fires_twice_while_firing() -> None:
    sim = Sim(make_plant(only=STOPS), at(6))
    sim.unit()
    sim.run_until(at(13, 59), every=dt.timedelta(seconds=7))
    assert kinds(sim.transitions) == [("firing", STOP_L1)]


def test_stale_data_pauses_the_stop_and_raises_source_stale_after_exactly_two_minutes() -> None:
    sim = Sim(make_plant(only=("line_stopped", "source_stale")), at(10))
    sim.unit()
    sim.evaluate()
    sim.lines["l1"].silent = True
    assert sim.run_until(at(10, 1, 59)) == []
    fired = sim.step_to(at(10, 2))
    assert kinds(fired) == [("firing", "source_stale:line/l1")]
    assert fired[0].message == "Line 1: no data for 2 min"
    assert sim.run_until(at(10, 30)) == []
    sim.lines["l1"].silent = False
    # fresh again: it has not made a unit for 30 min, so the stop fires at once; the stale
    # alert resolves after a minute of fresh data (clear_for_minutes)
    assert kinds(sim.step_to(at(10, 30, 30))) == [("firing", STOP_L1)]
    assert sim.run_until(at(10, 31)) == []
    assert kinds(sim.step_to(at(10, 31, 30))) == [("resolved", "source_stale:line/l1")]


def test_an_offline_edge_says_so_in_the_stale_alert() -> None:
    sim = Sim(make_plant(only=("source_stale",)), at(10))
    sim.evaluate()
    sim.lines["l1"].silent = True
    sim.lines["l1"].offline = True
    fired = sim.run_until(at(10, 2))
    assert kinds(fired) == [("firing", "source_stale:line/l1")]
    assert fired[0].message == "Line 1: no data for 2 min (its edge is offline)"


# --- rate below target ----------------------------------------------------------------------

RATES = ("rate_below_target",)


def test_rate_below_target_fires_after_its_window_and_for_minutes_exactly() -> None:
    sim = Sim(make_plant(only=RATES), at(6))
    sim.evaluate()
    slow = every(90, at(6))  # 40/h against 60/h planned: 67 %
    # the 15-min window fills at 06:15, then the breach must hold 15 min
    assert sim.run_until(at(6, 29, 59), each=slow) == []
    fired = sim.step_to(at(6, 30), each=slow)
    assert kinds(fired) == [("firing", "rate_below_target:line/l1")]
    assert fired[0].values["rate_per_hour"] == 40.0
    assert fired[0].message == (
        "Line 1 running slow: 40/h, 67 % of the planned 60/h over the last 15 min"
    )


def test_rate_ignores_the_break_and_resolves_at_the_shift_change() -> None:
    sim = Sim(make_plant(only=RATES), at(8, 30))
    sim.evaluate()
    sim.run_until(at(9), each=every(90, at(8, 30)))
    assert sim.transitions == []  # below since 08:45, but at 09:00 the break pauses it
    assert sim.run_until(at(9, 15)) == []  # nothing counts in the break
    # the 15 productive minutes up to 09:15:30 reach back over the break: still 40/h
    after = every(90, at(9, 15))
    assert kinds(sim.step_to(at(9, 15, 30), each=after)) == [
        ("firing", "rate_below_target:line/l1")
    ]
    sim.run_until(at(13, 59, 30), each=after)
    assert len(sim.transitions) == 1
    over = sim.step_to(at(14))
    assert kinds(over) == [("resolved", "rate_below_target:line/l1")]
    assert over[0].message == "Line 1: the early shift is over"


# --- shift target at risk -------------------------------------------------------------------

AT_RISK = ("shift_target_at_risk",)


def pace(percent: float) -> Callable[[Sim], None]:
    """Set Line 1's shift count so that the early shift's projection is `percent` % of its
    target (465 units in 465 productive minutes: one a minute)."""

    def set_count(sim: Sim) -> None:
        elapsed_min = (sim.now - at(6)).total_seconds() / 60
        if sim.now >= at(9, 15):
            elapsed_min -= 15
        sim.lines["l1"].shift_count = round(percent / 100 * elapsed_min)

    return set_count


def test_shift_target_at_risk_waits_for_60_minutes_into_the_shift_then_for_minutes() -> None:
    sim = Sim(make_plant(only=AT_RISK), at(6))
    assert sim.run_until(at(7, 9, 59), each=pace(80)) == []
    fired = sim.step_to(at(7, 10), each=pace(80))
    assert kinds(fired) == [("firing", "shift_target_at_risk:line/l1")]
    assert fired[0].values == {
        "shift_count": 56,
        "projected": 372,
        "target": 465,
        "percent": 80.0,
    }
    assert fired[0].message == "Line 1 shift target at risk: 372 of 465 projected (80 %), 56 made"


def test_a_projection_flapping_around_the_threshold_fires_once_and_resolves_once() -> None:
    sim = Sim(make_plant(only=AT_RISK), at(6))
    sim.run_until(at(7, 30), each=pace(85))
    assert kinds(sim.transitions) == [("firing", "shift_target_at_risk:line/l1")]
    flip = [0]

    def flapping(sim: Sim) -> None:  # 88 %, 92 %, 88 %, ... around 90 %, below the clear 95 %
        flip[0] += 1
        pace(88 if flip[0] % 2 else 92)(sim)

    sim.run_until(at(8, 30), each=flapping)
    assert len(sim.transitions) == 1
    sim.run_until(at(8, 40), each=pace(97))  # recovered from 08:30:30
    assert len(sim.transitions) == 1
    resolved = sim.step_to(at(8, 40, 30), each=pace(97))
    assert kinds(resolved) == [("resolved", "shift_target_at_risk:line/l1")]
    sim.run_until(at(9), each=pace(97))
    assert len(sim.transitions) == 2


def test_a_breach_shorter_than_for_minutes_never_fires() -> None:
    sim = Sim(make_plant(only=AT_RISK), at(6))
    sim.run_until(at(7), each=pace(92))
    flip = [0]

    def nine_minutes_low_then_one_ok(sim: Sim) -> None:
        flip[0] += 1
        pace(80 if flip[0] % 20 < 18 else 92)(sim)

    assert sim.run_until(at(9), each=nine_minutes_low_then_one_ok) == []


# --- yield ----------------------------------------------------------------------------------

YIELDS = ("yield_below",)


def eol_tested(sim: Sim, tested: int, passed: int) -> None:
    """Line 1's EOL station tests `tested` more units, `passed` of them pass."""
    fake = sim.lines["l1"]
    current = fake.yields[0] if fake.yields else StationYield("eol", "eol: passed/tested", 0, 0)
    fake.yields = (
        replace(current, tested=current.tested + tested, passed=current.passed + passed),
    )


def three_in_four(sim: Sim) -> None:
    """Two tested every 30 s, three of four pass."""
    eol_tested(sim, 2, 2 if sim.now.second == 0 else 1)


def test_yield_below_the_minimum_sample_is_ignored() -> None:
    def one_in_two_minutes(sim: Sim) -> None:  # 30 tested an hour, a third fail
        if sim.now.second == 0 and sim.now.minute % 2 == 0:
            eol_tested(sim, 1, 0 if sim.now.minute % 3 == 0 else 1)

    sim = Sim(make_plant(only=YIELDS), at(6))
    assert sim.run_until(at(12), each=one_in_two_minutes) == []


def test_yield_fires_after_for_minutes_once_the_sample_is_big_enough() -> None:
    sim = Sim(make_plant(only=YIELDS), at(6))
    # history from 06:00:30; 50 tested since then at 06:13, then 10 min to fire
    assert sim.run_until(at(6, 22, 30), each=three_in_four) == []
    fired = sim.step_to(at(6, 23), each=three_in_four)
    assert kinds(fired) == [("firing", "yield_below:station/l1/eol")]
    assert (fired[0].values["tested"], fired[0].values["percent"]) == (90, 75.6)
    assert fired[0].message == (
        "EOL test (Line 1) yield low: 75.6 % over the last 60 min (90 tested, alert below 95 %)"
    )


def test_a_station_override_wins_over_its_line() -> None:
    plant = make_plant(
        {
            "yield_below": {"percent": 70, "clear_percent": 85},
            "lines": {"l1": {"stations": {"eol": {"yield_below": {"percent": 80}}}}},
        },
        only=YIELDS,
    )
    sim = Sim(plant, at(6))
    fired = sim.run_until(at(6, 23), each=three_in_four)
    assert kinds(fired) == [("firing", "yield_below:station/l1/eol")]
    assert fired[0].message.endswith("(90 tested, alert below 80 %)")


# --- edges: sources and backlog -------------------------------------------------------------

STALE = ("source_stale",)


def test_a_disconnected_source_fires_after_two_minutes_and_resolves_after_one() -> None:
    sim = Sim(make_plant(only=STALE), at(10))
    sim.sources = [SourceLink("edge-1", "plc-1", connected=False, lines=("l1",))]
    sim.evaluate()
    key = "source_stale:source/edge-1/plc-1"
    assert sim.run_until(at(10, 1, 59)) == []
    fired = sim.step_to(at(10, 2))
    assert kinds(fired) == [("firing", key)]
    assert fired[0].message == "Source plc-1 of edge edge-1 disconnected for 2 min"
    assert fired[0].lines == ("l1",)
    sim.sources = [SourceLink("edge-1", "plc-1", connected=True, lines=("l1",))]
    assert sim.run_until(at(10, 3)) == []
    assert kinds(sim.step_to(at(10, 3, 30))) == [("resolved", key)]


def test_an_edge_no_longer_reported_resolves_its_alerts() -> None:
    sim = Sim(make_plant(only=STALE), at(10))
    sim.sources = [SourceLink("edge-1", "plc-1", connected=False, lines=("l1",))]
    sim.run_until(at(10, 3))
    assert kinds(sim.transitions) == [("firing", "source_stale:source/edge-1/plc-1")]
    sim.sources = []
    gone = sim.step_to(at(10, 3, 30))
    assert kinds(gone) == [("resolved", "source_stale:source/edge-1/plc-1")]
    assert gone[0].message == "source/edge-1/plc-1 is no longer reported, alert closed"


BACKLOG = ("edge_backlog",)


def backlog(sim: Sim, depth: int) -> None:
    sim.edges = [EdgeBacklog("edge-1", sim.now, depth, oldest_age_s=600.0, lines=("l1",))]


def test_a_growing_backlog_fires_after_ten_minutes_and_a_shrinking_one_resolves() -> None:
    sim = Sim(make_plant(only=BACKLOG), at(10))
    depth = [1000]

    def sample(change: int) -> Callable[[Sim], None]:
        def health(sim: Sim) -> None:  # a health sample a minute
            if sim.now.second == 0:
                depth[0] += change
                backlog(sim, depth[0])

        return health

    backlog(sim, 1000)
    sim.evaluate()
    assert sim.run_until(at(10, 10, 59), each=sample(50)) == []
    fired = sim.step_to(at(10, 11), each=sample(50))
    assert kinds(fired) == [("firing", "edge_backlog:edge/edge-1")]
    assert fired[0].message == (
        "Edge edge-1 backlog growing: 1,550 updates undelivered, the oldest 10 min old"
    )
    assert sim.run_until(at(10, 16, 30), each=sample(-100)) == []  # shrinking from 10:12
    resolved = sim.step_to(at(10, 17), each=sample(-100))
    assert kinds(resolved) == [("resolved", "edge_backlog:edge/edge-1")]


def test_a_backlog_growing_below_min_depth_does_not_fire() -> None:
    sim = Sim(make_plant(only=BACKLOG), at(10))
    depth = [0]

    def growing(sim: Sim) -> None:
        depth[0] += 5
        backlog(sim, depth[0])

    assert sim.run_until(at(11), each=growing) == []
    assert depth[0] == 600


# --- milestones -----------------------------------------------------------------------------


def crossing(value: int, line: str = "l1") -> Crossing:
    return Crossing(
        milestone="million",
        name="A million",
        value=value,
        scope="s",
        counter=CounterPath("s", "a", line, "eol", "passed"),
        ts=at(10, 0, 5),
        total=value + 2,
    )


def test_a_milestone_is_one_informational_notice_never_resolved() -> None:
    sim = Sim(make_plant(only=("milestone",)), at(10))
    sim.crossings = [crossing(1_000_000)]
    notice = sim.step_to(at(10, 0, 10))
    assert kinds(notice) == [("notice", "milestone:milestone/million/1000000")]
    assert notice[0].severity == "info"
    assert notice[0].since == at(10, 0, 5)
    assert notice[0].message == "Milestone reached: A million (1,000,000 passed in s) on Line 1"
    sim.crossings = [crossing(1_000_000)]  # the same crossing again: deduplicated
    assert sim.run_until(at(12)) == []


def test_milestones_can_be_switched_off_for_a_line() -> None:
    plant = make_plant({"lines": {"l1": {"milestone": {"enabled": False}}}}, only=("milestone",))
    sim = Sim(plant, at(10))
    sim.crossings = [crossing(2_000_000)]
    assert sim.step_to(at(10, 0, 10)) == []


def test_a_naive_clock_is_refused() -> None:
    evaluator = AlertEvaluator(make_plant())
    with pytest.raises(ValueError, match="aware"):
        evaluator.evaluate(dt.datetime(2026, 11, 23, 10), Signals())
