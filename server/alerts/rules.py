"""The alert evaluator: signals over time in, firing / resolved / notice transitions out.

`AlertEvaluator(plant).evaluate(now, signals)` is pure apart from its own memory (the alert
states, the output and yield history it needs for windows, the edges' last two health samples)
and takes the time from its caller, so a test drives it with a fake clock. Call it regularly
(every second or so) with the full picture (`server.alerts.signals`).

Shift-bound rules (line stopped, rate, shift target, yield) apply only while a shift of the
line's calendar runs: outside shifts they are OFF (a firing alert is resolved), in a break and
while the line's data is stale they are PAUSED (nothing changes, no timer runs). The rate and
the shift-target rules are per shift: a shift change resolves them. A stop goes on over a change
to a back-to-back shift. The line's own `source_stale` rule applies at all times.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from server.alerts.conditions import (
    EdgeBacklogGrowing,
    LineStopped,
    LineView,
    RateBelowTarget,
    ShiftTargetAtRisk,
    SourceStale,
    YieldBelow,
)
from server.alerts.history import Series
from server.alerts.hysteresis import Check, Hysteresis, Timing, Verdict
from server.alerts.productive import in_break, productive_seconds, run_start
from server.alerts.signals import EdgeBacklog, LineSignals, Signals, SourceLink
from server.alerts.transitions import AlertKey, Transition
from server.crossings import Crossing
from taktline.model.alerts import AlertSettings, Severity
from taktline.model.plant import PlacedLine, Plant
from taktline.model.shifts import ShiftCalendar
from taktline.shifts import ShiftWindow, shift_at

MAX_NOTICED = 10_000
"""Milestone notices remembered to send each only once (the oldest are forgotten first)."""


@dataclass(frozen=True, slots=True)
class _Step:
    """One rule's check of one key, ready for the hysteresis."""

    key: AlertKey
    severity: Severity
    timing: Timing
    check: Check
    lines: tuple[str, ...]


class _LineWatch:
    """One line's rules and what the evaluator remembers of it."""

    def __init__(self, placed: PlacedLine, calendar: ShiftCalendar, settings: AlertSettings):
        line = placed.line
        rules = settings.for_line(line.id)
        self.line = line
        self.calendar = calendar
        self.scope = f"line/{line.id}"
        self.stopped = LineStopped.of(rules.line_stopped)
        self.rate = RateBelowTarget.of(rules.rate_below_target)
        self.at_risk = ShiftTargetAtRisk.of(rules.shift_target_at_risk)
        self.stale = SourceStale.of(rules.source_stale)
        self.stale_after_s = rules.source_stale.after_minutes * 60
        self.milestone = rules.milestone
        self.yields = {
            s.id: YieldBelow.of(settings.for_station(line.id, s.id)) for s in line.stations
        }
        self.station_names = {s.id: s.name for s in line.stations}
        self.first_seen: dt.datetime | None = None
        self.unit_seen_at: dt.datetime | None = None
        self.outputs: Series[int] = Series()
        self.yield_totals: dict[str, Series[tuple[int, int]]] = {}
        self.window: ShiftWindow | None = None
        self._run: tuple[ShiftWindow, dt.datetime] | None = None

    def steps(self, now: dt.datetime, signals: LineSignals) -> Iterator[_Step]:
        """Every check of this line at `now`."""
        first_seen = self._observe(now, signals)
        lines = (self.line.id,)
        name = self.line.name
        silent_s = (now - (signals.updated_at or first_seen)).total_seconds()
        if self.stale is not None:
            check = self.stale.check_line(name, silent_s, signals.offline)
            key = AlertKey("source_stale", self.scope)
            yield _Step(key, self.stale.severity, self.stale.line_timing, check, lines)
        window, ended = shift_at(self.calendar, now), self.window
        self.window = window
        fresh = not signals.offline and silent_s < self.stale_after_s
        view = self._view(now, window, fresh, signals, first_seen)
        for rule in (self.stopped, self.rate, self.at_risk):
            if rule is None:
                continue
            key = AlertKey(rule.rule, self.scope)
            if rule.per_shift and ended is not None and ended != window:
                over = Check(Verdict.OFF, f"{name}: the {ended.name} shift is over")
                yield _Step(key, rule.severity, rule.timing, over, lines)
            if isinstance(view, LineView):
                yield _Step(key, rule.severity, rule.timing_at(view), rule.check(view), lines)
            else:
                yield _Step(key, rule.severity, rule.timing, view, lines)
        for station in signals.yields:
            yield_rule = self.yields.get(station.station)
            if yield_rule is None:
                continue
            key = AlertKey("yield_below", f"station/{self.line.id}/{station.station}")
            label = f"{self.station_names[station.station]} ({name})"
            totals = self.yield_totals[station.station]
            check = (
                yield_rule.check(label, now, station, totals)
                if isinstance(view, LineView)
                else view
            )
            yield _Step(key, yield_rule.severity, yield_rule.timing, check, lines)
            totals.forget_before(now - yield_rule.window)
        if self.rate is not None and isinstance(view, LineView):
            self.outputs.forget_before(self.rate.window_start(view))
        elif self.rate is None or window is None:
            self.outputs.forget_before(now)

    def _observe(self, now: dt.datetime, signals: LineSignals) -> dt.datetime:
        """Record the output and yield totals; returns when the line was first evaluated."""
        if self.first_seen is None:
            self.first_seen = now
        total, newest = signals.output_total, self.outputs.newest()
        if total is not None and newest is not None:
            if total < newest:  # the edge started again from 0: a new history
                self.outputs.clear()
            elif total > newest:
                self.unit_seen_at = now
        if total is not None:
            self.outputs.record(now, total)
        for station in signals.yields:
            if self.yields.get(station.station) is None:
                continue
            series = self.yield_totals.setdefault(station.station, Series())
            last = series.newest()
            if last is not None and (station.passed < last[0] or station.tested < last[1]):
                series.clear()
            series.record(now, (station.passed, station.tested))
        return self.first_seen

    def _view(
        self,
        now: dt.datetime,
        window: ShiftWindow | None,
        fresh: bool,
        signals: LineSignals,
        first_seen: dt.datetime,
    ) -> LineView | Check:
        """What the shift-bound rules look at, or why they do not look at the line now."""
        name = self.line.name
        if window is None:
            return Check(Verdict.OFF, f"{name}: no shift running, alert closed")
        if in_break(window, now):
            return Check(Verdict.PAUSED, f"{name}: break")
        if not fresh:
            return Check(Verdict.PAUSED, f"{name}: no fresh data")
        stopped_s = self._stopped_s(now, window, signals, first_seen)
        return LineView(name, now, window, self.line.target, signals, stopped_s, self.outputs)

    def _stopped_s(
        self, now: dt.datetime, window: ShiftWindow, signals: LineSignals, first_seen: dt.datetime
    ) -> float:
        """Productive seconds since the last unit (known from the signals or noticed here; else
        since the line was first evaluated), not before the current run of shifts began."""
        if self._run is None or self._run[0] != window:
            self._run = (window, run_start(self.calendar, window))
        known = [t for t in (signals.last_unit_at, self.unit_seen_at) if t is not None]
        since = max(max(known) if known else first_seen, self._run[1])
        return productive_seconds(self.calendar, since, now)


class AlertEvaluator:
    """The plant's alert rules, evaluated on the caller's clock."""

    def __init__(self, plant: Plant):
        settings = plant.alerts
        self._lines = {
            placed.line.id: _LineWatch(
                placed, plant.shift_calendars[placed.line.shift_calendar], settings
            )
            for placed in plant.lines()
        }
        self._source = SourceStale.of(settings.source_stale)
        self._backlog = EdgeBacklogGrowing.of(settings.edge_backlog)
        self._samples: dict[str, tuple[EdgeBacklog, EdgeBacklog | None]] = {}
        self._hysteresis = Hysteresis()
        self._open: dict[AlertKey, tuple[Severity, tuple[str, ...]]] = {}
        self._noticed: collections.OrderedDict[AlertKey, None] = collections.OrderedDict()

    def restore(
        self, firing: Iterable[tuple[AlertKey, Severity, tuple[str, ...], dt.datetime]]
    ) -> None:
        """Take alerts that were firing before a restart (key, severity, lines, since) as firing,
        so that they are not raised again and are resolved when their condition clears (or
        their scope is gone). Milestone notices are not states: they are left out."""
        for key, severity, lines, since in firing:
            if key.rule == "milestone":
                continue
            self._hysteresis.restore(key, since)
            self._open[key] = (severity, lines)

    def evaluate(self, now: dt.datetime, signals: Signals) -> list[Transition]:
        """The transitions `signals` make at the aware instant `now`."""
        if now.tzinfo is None:
            raise ValueError("evaluate needs an aware datetime")
        steps: list[_Step] = []
        for line in signals.lines:
            watch = self._lines.get(line.line)
            if watch is not None:
                steps += watch.steps(now, line)
        steps += self._edge_steps(signals.edges)
        steps += self._source_steps(signals.sources)
        transitions = [t for step in steps if (t := self._apply(now, step)) is not None]
        seen = {step.key for step in steps}
        for key in self._hysteresis.active():
            if key not in seen:
                gone = Check(Verdict.OFF, f"{key.scope} is no longer reported, alert closed")
                severity, lines = self._open.get(key, ("info", ()))
                step = _Step(key, severity, Timing(dt.timedelta(0), dt.timedelta(0)), gone, lines)
                if (transition := self._apply(now, step)) is not None:
                    transitions.append(transition)
        transitions += self._notices(now, signals.crossings)
        return transitions

    def _apply(self, now: dt.datetime, step: _Step) -> Transition | None:
        change = self._hysteresis.step(step.key, now, step.check.verdict, step.timing)
        if change is None:
            return None
        if change.kind == "firing":
            self._open[step.key] = (step.severity, step.lines)
        else:
            self._open.pop(step.key, None)
        return Transition(
            kind=change.kind,
            key=step.key,
            severity=step.severity,
            at=now,
            since=change.since,
            message=step.check.text,
            lines=step.lines,
            values=step.check.values,
        )

    def _edge_steps(self, samples: tuple[EdgeBacklog, ...]) -> Iterator[_Step]:
        latest: dict[str, tuple[EdgeBacklog, EdgeBacklog | None]] = {}
        for sample in samples:
            current, previous = self._samples.get(sample.edge_id, (sample, None))
            if sample.ts > current.ts:
                current, previous = sample, current
            latest[sample.edge_id] = (current, previous)
        self._samples = latest  # edges no longer reported are forgotten
        rule = self._backlog
        if rule is None:
            return
        for current, previous in latest.values():
            key = AlertKey(rule.rule, f"edge/{current.edge_id}")
            check = rule.check(current, previous)
            yield _Step(key, rule.severity, rule.timing, check, current.lines)

    def _source_steps(self, links: tuple[SourceLink, ...]) -> Iterator[_Step]:
        rule = self._source
        if rule is None:
            return
        for link in links:
            key = AlertKey(rule.rule, f"source/{link.edge_id}/{link.source}")
            check = rule.check_source(link)
            yield _Step(key, rule.severity, rule.source_timing, check, link.lines)

    def _notices(self, now: dt.datetime, crossings: tuple[Crossing, ...]) -> list[Transition]:
        notices = []
        for crossing in crossings:
            watch = self._lines.get(crossing.counter.line)
            if watch is None or not watch.milestone.enabled:
                continue
            key = AlertKey("milestone", f"milestone/{crossing.milestone}/{crossing.value}")
            if key in self._noticed:
                continue
            self._noticed[key] = None
            if len(self._noticed) > MAX_NOTICED:
                self._noticed.popitem(last=False)
            counted = f"{crossing.value:,} {crossing.counter.counter} in {crossing.scope}"
            notices.append(
                Transition(
                    kind="notice",
                    key=key,
                    severity=watch.milestone.severity,
                    at=now,
                    since=crossing.ts,
                    message=f"Milestone reached: {crossing.name} ({counted}) on {watch.line.name}",
                    lines=(watch.line.id,),
                    values={"value": crossing.value, "total": crossing.total},
                )
            )
        return notices
