"""The rules: each a frozen config made from its settings, and a check that gives a verdict.

A check is pure: it reads what the evaluator measured (`LineView`, a station's window, an edge's
two newest health samples) and says BREACH, BAND or RECOVERED (or PAUSED when it cannot tell),
with a message for the shift lead. Whether that fires or resolves is `server.alerts.hysteresis`'s
business; when a shift-bound rule applies at all (in a shift, outside breaks, on fresh data) is
the evaluator's (`server.alerts.rules`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import ClassVar

from server.alerts.history import Series
from server.alerts.hysteresis import Check, Timing, Verdict
from server.alerts.productive import productive_start
from server.alerts.signals import EdgeBacklog, LineSignals, SourceLink, StationYield
from server.alerts.transitions import RuleName, Value
from taktline.model.alerts import (
    EdgeBacklogSettings,
    LineStoppedSettings,
    RateBelowTargetSettings,
    Severity,
    ShiftTargetAtRiskSettings,
    SourceStaleSettings,
    YieldBelowSettings,
)
from taktline.model.assets import Target
from taktline.shifts import ShiftWindow, shift_target

BREACH, BAND, RECOVERED, PAUSED = (
    Verdict.BREACH,
    Verdict.BAND,
    Verdict.RECOVERED,
    Verdict.PAUSED,
)


def _timing(fire_minutes: float, clear_minutes: float) -> Timing:
    return Timing(dt.timedelta(minutes=fire_minutes), dt.timedelta(minutes=clear_minutes))


@dataclass(frozen=True, slots=True)
class LineView:
    """One line at one evaluation inside a shift, as the shift-bound rules see it."""

    name: str
    now: dt.datetime
    window: ShiftWindow
    target: Target
    signals: LineSignals
    stopped_s: float
    """Productive seconds since the last unit (see `server.alerts.productive`)."""
    outputs: Series[int]
    """The output counter's lifetime total as the evaluator saw it over time."""

    @property
    def takt_s(self) -> float:
        """Planned seconds per unit: the takt, or productive shift time / units per shift."""
        if self.target.takt_seconds is not None:
            return self.target.takt_seconds
        return self.window.productive_seconds() / max(shift_target(self.target, self.window), 1)


@dataclass(frozen=True, slots=True)
class LineStopped:
    """No unit for max(after_takts x takt, min_stop) of productive time."""

    rule: ClassVar[RuleName] = "line_stopped"
    title: ClassVar[str] = "stop"
    per_shift: ClassVar[bool] = False
    severity: Severity
    timing: Timing
    after_takts: float
    min_stop_s: float
    clear_takts: float

    @classmethod
    def of(cls, settings: LineStoppedSettings) -> LineStopped | None:
        """The rule, or None when disabled."""
        if not settings.enabled:
            return None
        return cls(
            settings.severity,
            _timing(0, settings.clear_for_minutes),
            settings.after_takts,
            settings.min_minutes * 60,
            settings.clear_takts,
        )

    def timing_at(self, view: LineView) -> Timing:
        """The recovery must last `clear_takts` takts too, so a single unit never resolves."""
        clear_after = max(
            self.timing.clear_after, dt.timedelta(seconds=self.clear_takts * view.takt_s)
        )
        return Timing(self.timing.fire_after, clear_after)

    def check(self, view: LineView) -> Check:
        takt = view.takt_s
        stop_after = max(self.after_takts * takt, self.min_stop_s)
        stopped = view.stopped_s
        values = {
            "stopped_s": round(stopped),
            "takt_s": round(takt, 1),
            "stop_after_s": round(stop_after),
        }
        if stopped >= stop_after:
            text = f"{view.name} stopped: no unit for {duration(stopped)} (takt {seconds(takt)})"
            return Check(BREACH, text, values)
        if stopped < self.clear_takts * takt:
            text = f"{view.name} running again: last unit {duration(stopped)} ago"
            return Check(RECOVERED, text, values)
        return Check(BAND, f"{view.name} slow: no unit for {duration(stopped)}", values)


@dataclass(frozen=True, slots=True)
class RateBelowTarget:
    """Units over the last `window` of productive time, against the planned rate."""

    rule: ClassVar[RuleName] = "rate_below_target"
    title: ClassVar[str] = "low rate"
    per_shift: ClassVar[bool] = True
    severity: Severity
    timing: Timing
    percent: float
    clear_percent: float
    window_s: float

    @classmethod
    def of(cls, settings: RateBelowTargetSettings) -> RateBelowTarget | None:
        """The rule, or None when disabled."""
        if not settings.enabled:
            return None
        return cls(
            settings.severity,
            _timing(settings.for_minutes, settings.clear_for_minutes),
            settings.percent,
            settings.clear_percent,
            settings.window_minutes * 60,
        )

    def timing_at(self, view: LineView) -> Timing:
        """The same at every instant."""
        return self.timing

    def window_start(self, view: LineView) -> dt.datetime:
        """Where the rate's window begins (the output history must reach back to it)."""
        return productive_start(view.window, view.now, self.window_s)

    def check(self, view: LineView) -> Check:
        start = self.window_start(view)
        window = view.window
        productive = window.productive_elapsed(view.now) - window.productive_elapsed(start)
        before, now_total = view.outputs.at(start), view.signals.output_total
        if productive < self.window_s or before is None or now_total is None:
            return Check(PAUSED, f"{view.name}: not enough production time for a rate yet")
        rate = (now_total - before) * 3600 / productive
        planned = 3600 / view.takt_s
        percent = 100 * rate / planned
        values = {
            "rate_per_hour": round(rate, 1),
            "planned_per_hour": round(planned, 1),
            "percent": round(percent, 1),
            "window_s": round(self.window_s),
        }
        rates = f"{rate:.0f}/h, {percent:.0f} % of the planned {planned:.0f}/h"
        if percent < self.percent:
            last = duration(self.window_s)
            return Check(BREACH, f"{view.name} running slow: {rates} over the last {last}", values)
        if percent >= self.clear_percent:
            return Check(RECOVERED, f"{view.name} back to rate: {rates}", values)
        return Check(BAND, f"{view.name} still slow: {rates}", values)


@dataclass(frozen=True, slots=True)
class ShiftTargetAtRisk:
    """The shift total projected at this shift's pace so far (per productive second)."""

    rule: ClassVar[RuleName] = "shift_target_at_risk"
    title: ClassVar[str] = "shift target at risk"
    per_shift: ClassVar[bool] = True
    severity: Severity
    timing: Timing
    percent: float
    clear_percent: float
    after_s: float

    @classmethod
    def of(cls, settings: ShiftTargetAtRiskSettings) -> ShiftTargetAtRisk | None:
        """The rule, or None when disabled."""
        if not settings.enabled:
            return None
        return cls(
            settings.severity,
            _timing(settings.for_minutes, settings.clear_for_minutes),
            settings.percent,
            settings.clear_percent,
            settings.after_minutes_into_shift * 60,
        )

    def timing_at(self, view: LineView) -> Timing:
        """The same at every instant."""
        return self.timing

    def check(self, view: LineView) -> Check:
        window = view.window
        elapsed = window.productive_elapsed(view.now)
        if elapsed < max(self.after_s, 1.0):
            return Check(PAUSED, f"{view.name}: too early in the shift for a projection")
        count = view.signals.shift_count
        target = shift_target(view.target, window)
        projected = round(count * window.productive_seconds() / elapsed)
        percent = 100 * projected / max(target, 1)
        values = {
            "shift_count": count,
            "projected": projected,
            "target": target,
            "percent": round(percent, 1),
        }
        numbers = f"{projected:,} of {target:,} projected ({percent:.0f} %), {count:,} made"
        if percent < self.percent:
            return Check(BREACH, f"{view.name} shift target at risk: {numbers}", values)
        if percent >= self.clear_percent:
            return Check(RECOVERED, f"{view.name} back on track for the target: {numbers}", values)
        return Check(BAND, f"{view.name} shift target still at risk: {numbers}", values)


@dataclass(frozen=True, slots=True)
class YieldBelow:
    """A station's first-pass yield over a window of wall-clock time, with a minimum sample."""

    rule: ClassVar[RuleName] = "yield_below"
    title: ClassVar[str] = "low yield"
    per_shift: ClassVar[bool] = False
    severity: Severity
    timing: Timing
    percent: float
    clear_percent: float
    window: dt.timedelta
    min_units: int

    @classmethod
    def of(cls, settings: YieldBelowSettings) -> YieldBelow | None:
        """The rule, or None when disabled."""
        if not settings.enabled:
            return None
        return cls(
            settings.severity,
            _timing(settings.for_minutes, settings.clear_for_minutes),
            settings.percent,
            settings.clear_percent,
            dt.timedelta(minutes=settings.window_minutes),
            settings.min_units,
        )

    def check(
        self, name: str, now: dt.datetime, current: StationYield, totals: Series[tuple[int, int]]
    ) -> Check:
        """`totals`: (passed, tested) lifetime totals over time; its oldest value stands in for
        the window's start while the history is shorter than the window."""
        before = totals.at(now - self.window) or totals.oldest()
        passed, tested = (0, 0) if before is None else before
        tested = current.tested - tested
        passed = current.passed - passed
        values: dict[str, Value] = {"tested": tested, "passed": passed, "basis": current.basis}
        if tested < self.min_units:
            return Check(PAUSED, f"{name}: only {tested} tested, too few for a yield", values)
        percent = min(100.0, 100 * passed / tested)
        values["percent"] = round(percent, 1)
        words = f"{percent:.1f} % over the last {duration(self.window.total_seconds())}"
        sample = f"{tested:,} tested"
        if percent < self.percent:
            text = f"{name} yield low: {words} ({sample}, alert below {self.percent:g} %)"
            return Check(BREACH, text, values)
        if percent >= self.clear_percent:
            return Check(RECOVERED, f"{name} yield back up: {words} ({sample})", values)
        return Check(BAND, f"{name} yield still low: {words} ({sample})", values)


@dataclass(frozen=True, slots=True)
class SourceStale:
    """A line silent (no message, no edge heartbeat) for `after`; an edge's source disconnected
    for `after` (the hysteresis' fire duration)."""

    rule: ClassVar[RuleName] = "source_stale"
    severity: Severity
    after_s: float
    line_timing: Timing
    source_timing: Timing

    @classmethod
    def of(cls, settings: SourceStaleSettings) -> SourceStale | None:
        """The rule, or None when disabled."""
        if not settings.enabled:
            return None
        return cls(
            settings.severity,
            settings.after_minutes * 60,
            _timing(0, settings.clear_for_minutes),
            _timing(settings.after_minutes, settings.clear_for_minutes),
        )

    def check_line(self, name: str, silent_s: float, offline: bool) -> Check:
        values = {"silent_s": round(silent_s), "offline": int(offline)}
        if silent_s >= self.after_s:
            why = " (its edge is offline)" if offline else ""
            return Check(BREACH, f"{name}: no data for {duration(silent_s)}{why}", values)
        if offline:
            return Check(BAND, f"{name}: its edge is offline", values)
        return Check(RECOVERED, f"{name}: data coming in again", values)

    def check_source(self, link: SourceLink) -> Check:
        name = f"Source {link.source} of edge {link.edge_id}"
        values = {"connected": int(link.connected)}
        if link.connected:
            return Check(RECOVERED, f"{name} connected again", values)
        return Check(BREACH, f"{name} disconnected for {duration(self.after_s)}", values)


@dataclass(frozen=True, slots=True)
class EdgeBacklogGrowing:
    """An edge's outbox at least `min_depth` deep and not shrinking from sample to sample."""

    rule: ClassVar[RuleName] = "edge_backlog"
    severity: Severity
    timing: Timing
    min_depth: int
    clear_depth: int

    @classmethod
    def of(cls, settings: EdgeBacklogSettings) -> EdgeBacklogGrowing | None:
        """The rule, or None when disabled."""
        if not settings.enabled:
            return None
        return cls(
            settings.severity,
            _timing(settings.for_minutes, settings.clear_for_minutes),
            settings.min_depth,
            settings.clear_depth,
        )

    def check(self, sample: EdgeBacklog, previous: EdgeBacklog | None) -> Check:
        """`previous`: the sample before `sample` (None until there are two)."""
        depth = sample.depth
        name = f"Edge {sample.edge_id}"
        values = {"depth": depth, "oldest_age_s": round(sample.oldest_age_s)}
        backlog = f"{depth:,} updates undelivered, the oldest {duration(sample.oldest_age_s)} old"
        if depth <= self.clear_depth:
            return Check(RECOVERED, f"{name} backlog cleared: {depth:,} undelivered", values)
        if previous is None:
            return Check(PAUSED, f"{name}: {backlog}", values)
        if depth < previous.depth:
            return Check(RECOVERED, f"{name} backlog shrinking: {backlog}", values)
        if depth >= self.min_depth:
            return Check(BREACH, f"{name} backlog growing: {backlog}", values)
        return Check(BAND, f"{name} backlog: {backlog}", values)


def duration(secs: float) -> str:
    """`45 s`, `6 min`, `90 min`, `2 h 05 min`."""
    secs = max(0.0, secs)
    if secs < 90:
        return f"{round(secs)} s"
    minutes = round(secs / 60)
    if minutes <= 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def seconds(secs: float) -> str:
    """A takt: `60 s`, `72.5 s`."""
    return f"{round(secs, 1):g} s"
