"""Counter semantics: raw PLC registers and counted messages into lifetime totals. No I/O.

A `total` counter reads an absolute register of width w (modulus M = 2**w). Its state is the
last accepted raw value `raw`, the high-water mark `base` (units count only above it), the
lifetime `total` and at most one pending drop. With `c` = `max_correction` and `s` = `max_step`,
a GOOD reading v (0 <= v < M) is decided by the first matching row (defaults: c = 2,
s = M/16 but at most 2**20, confirm_after = 5 s; see TotalRules). `r` is the most units the
counter can have made since the last accepted reading (at least one second's worth): its
`max_rate_per_min`, and RATE_SLACK x its own observed rate (an exponential average; zero while
it has counted nothing since its first reading) plus SLACK_UNITS. A wrap that would mean more
units than that is a reset, not a rollover: a PLC reset near the top of a 16-bit register, or of
a rarely counting register such as `failed`, otherwise counts hundreds of phantom units:

| state | reading | decision | delta | then |
|---|---|---|---|---|
| no reading yet | any | FIRST | 0 | total = initial_total or v; raw = base = v |
| no pending drop | v == raw | UNCHANGED | 0 | - |
| no pending drop | v > base | INCREASE | v - base | raw = base = v |
| no pending drop | base - c <= v <= base | CORRECTION | 0 | raw = v (base stays: high-water mark) |
| no pending drop | v < base - c | DROP | 0 | pending = v, held, not counted yet |
| pending drop p | v >= base - c | GLITCH | max(0, v - base) | raw = v, base = max(base, v) |
| pending drop p | v == p | UNCHANGED | 0 | still pending (a repeat is no new evidence) |
| pending drop p | (M - base) + v <= min(s, r) | ROLLOVER | (M - base) + v | raw = base = v |
| pending drop p | otherwise | RESET | v (counts from zero) | raw = base = v |
| pending drop p | `expire` after `confirm_after` | ROLLOVER/RESET | as above, v = p | as above |

Readings of BAD or UNCERTAIN quality, without a value (BAD_QUALITY) or outside 0..M-1
(OUT_OF_RANGE) change nothing. A wrap is held like any drop, one reading or at most
`confirm_after`: a bad 0 read near the top of the range would otherwise count almost M units.
Known ambiguities: a reset from a value within `c` of zero counts as a correction (at most `c`
units are not counted); a reset near the top of the range whose next value makes a plausible
wrap (within both `s` and `r`) counts as a rollover; a reset after which the register passes its
old value before the next reading counts as a glitch. The total never goes down.

An `increment` counter adds each message's quantity (its value, 1 when absent); a message whose
`message_id` is among the last `dedupe_window` ids is a DUPLICATE and counts nothing.

An update is emitted when the accepted raw value changes (and on FIRST) for `total` counters,
and for every counted message of an `increment` counter. Each counter's update timestamps
strictly increase (a tie is moved 1 µs, the resolution of the records' datetimes, after the
previous update): InfluxDB keeps one point per series and timestamp, so two updates in the same
millisecond would otherwise become one point.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol

from taktline.model.assets import Counter
from taktline.records import Quality

NS_PER_S = 1_000_000_000
RATE_SLACK = 3.0
"""A wrap may imply up to this many times the counter's observed rate (a line speeding up)."""
SLACK_UNITS = 2
"""... plus this many units, so a counter that just started counting can still wrap."""
RATE_WEIGHT = 0.2
"""Weight of the newest reading in the counter's averaged rate."""
TIE_STEP_NS = 1_000
"""Ties are broken by 1 µs: records carry datetimes, whose resolution is a microsecond."""


class Decision(StrEnum):
    """What a counter made of one reading (or of an expiry)."""

    FIRST = "first"
    INCREASE = "increase"
    UNCHANGED = "unchanged"
    CORRECTION = "correction"
    DROP = "drop"
    GLITCH = "glitch"
    ROLLOVER = "rollover"
    RESET = "reset"
    INCREMENT = "increment"
    DUPLICATE = "duplicate"
    BAD_QUALITY = "bad_quality"
    OUT_OF_RANGE = "out_of_range"


@dataclass(frozen=True, slots=True)
class Step:
    """The outcome of one reading: the decision, the units it counted and the new total."""

    decision: Decision
    delta: int
    total: int
    raw: int | None
    ts_ns: int
    emit: bool


@dataclass(frozen=True, slots=True)
class TotalRules:
    """Tuning of a `total` counter; `max_step` None means `default_max_step(bits)`."""

    max_step: int | None = None
    max_correction: int = 2
    confirm_after_s: float = 5.0


DEFAULT_RULES = TotalRules()


def default_max_step(bits: int) -> int:
    """The largest wrap taken as a rollover: M/16, at most 2**20 units."""
    return min((1 << bits) >> 4, 1 << 20)


@dataclass(frozen=True, slots=True)
class TotalState:
    """The persisted state of a `total` counter."""

    total: int | None = None
    raw: int | None = None
    base: int | None = None
    pending_raw: int | None = None
    pending_ts_ns: int | None = None
    pending_at_ns: int | None = None
    ts_ns: int | None = None
    rate_per_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"kind": "total", **{name: getattr(self, name) for name in self.__slots__}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TotalState:
        """Inverse of `to_json`."""
        return cls(**{name: data.get(name) for name in cls.__slots__})


class CounterLogic(Protocol):
    """One counter's semantics; `state_json()` is what the outbox persists."""

    @property
    def total(self) -> int | None: ...

    def step(
        self,
        value: int | None,
        quality: Quality,
        ts_ns: int,
        at_ns: int,
        message_id: str | None = None,
    ) -> Step: ...

    def expire(self, now_ns: int) -> Step | None: ...

    def state_json(self) -> dict[str, Any]: ...


class TotalCounter:
    """An absolute register that may roll over, reset, glitch or step back (see module table)."""

    def __init__(
        self,
        bits: int = 32,
        initial_total: int | None = None,
        rules: TotalRules = DEFAULT_RULES,
        state: TotalState | None = None,
        max_rate_per_s: float | None = None,
    ) -> None:
        self.modulus = 1 << bits
        self.max_rate_per_s = max_rate_per_s
        self.initial_total = initial_total
        self.max_step = rules.max_step if rules.max_step is not None else default_max_step(bits)
        self.max_correction = rules.max_correction
        self.confirm_after_ns = int(rules.confirm_after_s * NS_PER_S)
        self.state = state or TotalState()

    @property
    def total(self) -> int | None:
        """The lifetime total, None before the first good reading."""
        return self.state.total

    def state_json(self) -> dict[str, Any]:
        """The state to persist."""
        return self.state.to_json()

    def step(
        self,
        value: int | None,
        quality: Quality,
        ts_ns: int,
        at_ns: int,
        message_id: str | None = None,
    ) -> Step:
        """Apply one reading received at `at_ns` and stamped `ts_ns`."""
        s = self.state
        if quality is not Quality.GOOD or value is None:
            return self._nothing(Decision.BAD_QUALITY, ts_ns)
        if not 0 <= value < self.modulus:
            return self._nothing(Decision.OUT_OF_RANGE, ts_ns)
        if s.total is None or s.raw is None or s.base is None:
            total = self.initial_total if self.initial_total is not None else value
            self.state = TotalState(total=total, raw=value, base=value, ts_ns=ts_ns)
            return Step(Decision.FIRST, 0, total, value, ts_ns, emit=True)
        band_low = s.base - self.max_correction
        if s.pending_raw is None:
            if value == s.raw:
                return self._nothing(Decision.UNCHANGED, ts_ns)
            if value > s.base:
                return self._accept(Decision.INCREASE, value - s.base, value, ts_ns)
            if value >= band_low:
                return self._accept(Decision.CORRECTION, 0, value, ts_ns)
            self.state = replace(s, pending_raw=value, pending_ts_ns=ts_ns, pending_at_ns=at_ns)
            return self._nothing(Decision.DROP, ts_ns)
        if value >= band_low:
            return self._accept(Decision.GLITCH, max(0, value - s.base), value, ts_ns)
        if value == s.pending_raw:
            return self._nothing(Decision.UNCHANGED, ts_ns)
        return self._confirm_drop(value, ts_ns)

    def expire(self, now_ns: int) -> Step | None:
        """Confirm a drop that has stood for `confirm_after` as a rollover or reset."""
        s = self.state
        if s.pending_raw is None or s.pending_at_ns is None or s.pending_ts_ns is None:
            return None
        if now_ns - s.pending_at_ns < self.confirm_after_ns:
            return None
        return self._confirm_drop(s.pending_raw, s.pending_ts_ns)

    def _confirm_drop(self, value: int, ts_ns: int) -> Step:
        assert self.state.base is not None
        wrap = self.modulus - self.state.base + value
        if wrap <= min(self.max_step, self._units_possible_since_last(ts_ns)):
            return self._accept(Decision.ROLLOVER, wrap, value, ts_ns, base=value)
        return self._accept(Decision.RESET, value, value, ts_ns, base=value)

    def _units_possible_since_last(self, ts_ns: int) -> int | float:
        """The most units the counter can have made since the last accepted reading."""
        last = self.state.ts_ns
        if last is None:
            return math.inf
        elapsed_s = max((ts_ns - last) / NS_PER_S, 1.0)
        bounds = [math.inf]
        if self.max_rate_per_s is not None:
            bounds.append(math.ceil(self.max_rate_per_s * elapsed_s))
        observed = self.state.rate_per_s or 0.0  # no unit counted since the first reading: 0
        bounds.append(math.ceil(RATE_SLACK * observed * elapsed_s) + SLACK_UNITS)
        return min(bounds)

    def _observed_rate(self, delta: int, ts_ns: int) -> float | None:
        """The counter's rate (units/s), averaged over its counted readings."""
        s = self.state
        if delta <= 0 or s.ts_ns is None or ts_ns <= s.ts_ns:
            return s.rate_per_s
        rate = delta * NS_PER_S / (ts_ns - s.ts_ns)
        if s.rate_per_s is None:
            return rate
        return (1 - RATE_WEIGHT) * s.rate_per_s + RATE_WEIGHT * rate

    def _accept(
        self, decision: Decision, delta: int, value: int, ts_ns: int, base: int | None = None
    ) -> Step:
        s = self.state
        assert s.total is not None and s.base is not None
        new_base = base if base is not None else max(s.base, value)
        total = s.total + delta
        rate = self._observed_rate(delta, ts_ns)
        ts_ns = after(s.ts_ns, ts_ns)
        self.state = TotalState(total=total, raw=value, base=new_base, ts_ns=ts_ns, rate_per_s=rate)
        return Step(decision, delta, total, value, ts_ns, emit=value != s.raw)

    def _nothing(self, decision: Decision, ts_ns: int) -> Step:
        return Step(decision, 0, self.state.total or 0, self.state.raw, ts_ns, emit=False)


def after(previous_ns: int | None, ts_ns: int) -> int:
    """`ts_ns`, moved to TIE_STEP_NS after `previous_ns` when it is not later."""
    return ts_ns if previous_ns is None or ts_ns > previous_ns else previous_ns + TIE_STEP_NS


DEDUPE_WINDOW = 2048
"""Message ids an `increment` counter remembers (persisted with its state). For exactly-once
counting across an edge crash it must cover what was committed but not yet acknowledged to the
source: at most an MQTT source's `receive_maximum` (default 1000) messages."""


class IncrementCounter:
    """Each message adds its quantity; message ids seen recently are duplicates."""

    def __init__(
        self,
        initial_total: int | None = None,
        dedupe_window: int = DEDUPE_WINDOW,
        state: dict[str, Any] | None = None,
    ) -> None:
        self.dedupe_window = dedupe_window
        state = state or {}
        self._total: int = state.get("total", initial_total or 0)
        self._seen: OrderedDict[str, None] = OrderedDict.fromkeys(state.get("seen", []))
        self._ts_ns: int | None = state.get("ts_ns")

    @property
    def total(self) -> int:
        """The lifetime total."""
        return self._total

    def state_json(self) -> dict[str, Any]:
        """The state to persist, with the dedupe window (a restart must not recount)."""
        return {
            "kind": "increment",
            "total": self._total,
            "seen": list(self._seen),
            "ts_ns": self._ts_ns,
        }

    def step(
        self,
        value: int | None,
        quality: Quality,
        ts_ns: int,
        at_ns: int,
        message_id: str | None = None,
    ) -> Step:
        """Apply one message."""
        quantity = 1 if value is None else value
        if quality is not Quality.GOOD:
            return Step(Decision.BAD_QUALITY, 0, self._total, None, ts_ns, emit=False)
        if quantity < 0:
            return Step(Decision.OUT_OF_RANGE, 0, self._total, quantity, ts_ns, emit=False)
        if message_id is not None:
            if message_id in self._seen:
                self._seen.move_to_end(message_id)
                return Step(Decision.DUPLICATE, 0, self._total, quantity, ts_ns, emit=False)
            self._seen[message_id] = None
            while len(self._seen) > self.dedupe_window:
                self._seen.popitem(last=False)
        self._total += quantity
        if quantity > 0:
            ts_ns = self._ts_ns = after(self._ts_ns, ts_ns)
        return Step(Decision.INCREMENT, quantity, self._total, quantity, ts_ns, emit=quantity > 0)

    def expire(self, now_ns: int) -> Step | None:
        """Nothing is ever held."""
        return None


def counter_logic(
    counter: Counter, state: dict[str, Any] | None, rules: TotalRules = DEFAULT_RULES
) -> CounterLogic:
    """The logic for a plant counter, restored from its persisted state when there is one."""
    if counter.semantics == "increment":
        kept = state if state and state.get("kind") == "increment" else None
        return IncrementCounter(counter.initial_total, state=kept)
    kept_total = TotalState.from_json(state) if state and state.get("kind") == "total" else None
    return TotalCounter(
        counter.width,
        counter.initial_total,
        rules,
        kept_total,
        max_rate_per_s=counter.max_rate_per_min / 60,
    )
