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
old value before the next reading counts as a glitch; a second reset before a reading confirmed
the first loses the units counted between the two. The total never goes down.

An `increment` counter adds each message's quantity (its value, 1 when absent); a message whose
`message_id` is among the last `dedupe_window` ids is a DUPLICATE and counts nothing.

An update is emitted when the accepted raw value changes (and on FIRST) for `total` counters,
and for every counted message of an `increment` counter. Each counter's update timestamps
strictly increase (a tie is moved 1 µs, the resolution of the records' datetimes, after the
previous update): InfluxDB keeps one point per series and timestamp, so two updates in the same
millisecond would otherwise become one point.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

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
_GOOD = Quality.GOOD
_encode = json.JSONEncoder(check_circular=False, separators=(",", ":")).encode


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


STATE_KEPT = frozenset({Decision.UNCHANGED, Decision.BAD_QUALITY, Decision.OUT_OF_RANGE})
"""Decisions that leave a counter's state as it was (nothing new to persist)."""


class Step(NamedTuple):
    """The outcome of one reading: the decision, the units it counted and the new total.

    A named tuple, not a frozen dataclass: one is made per reading, and a frozen dataclass
    costs three times as much to build.
    """

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
    """The state of a `total` counter, as persisted (`TotalCounter.state` is a snapshot)."""

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
        """Inverse of `to_json` (a missing key is None)."""
        return cls(**{name: data.get(name) for name in cls.__slots__})


class CounterLogic(Protocol):
    """One counter's semantics; `state_text()` is what the outbox persists (a JSON object)."""

    @property
    def total(self) -> int | None: ...

    @property
    def pending(self) -> bool: ...

    def step(
        self,
        value: int | None,
        quality: Quality,
        ts_ns: int,
        at_ns: int,
        message_id: str | None = None,
    ) -> Step: ...

    def expire(self, now_ns: int) -> Step | None: ...

    def state_text(self) -> str: ...


class TotalCounter:
    """An absolute register that may roll over, reset, glitch or step back (see module table).

    Its state lives in plain attributes (one reading changes a few of them); `state` is a
    `TotalState` snapshot of them.
    """

    __slots__ = (
        "_base",
        "_pending_at_ns",
        "_pending_raw",
        "_pending_ts_ns",
        "_rate_per_s",
        "_raw",
        "_total",
        "_ts_ns",
        "confirm_after_ns",
        "initial_total",
        "max_correction",
        "max_rate_per_s",
        "max_step",
        "modulus",
    )

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
        s = state or TotalState()
        self._total = s.total
        self._raw = s.raw
        self._base = s.base
        self._pending_raw = s.pending_raw
        self._pending_ts_ns = s.pending_ts_ns
        self._pending_at_ns = s.pending_at_ns
        self._ts_ns = s.ts_ns
        self._rate_per_s = s.rate_per_s

    @property
    def total(self) -> int | None:
        """The lifetime total, None before the first good reading."""
        return self._total

    @property
    def pending(self) -> bool:
        """True while a drop is held (`expire` may confirm it)."""
        return self._pending_raw is not None

    @property
    def state(self) -> TotalState:
        """A snapshot of the state."""
        return TotalState(
            self._total,
            self._raw,
            self._base,
            self._pending_raw,
            self._pending_ts_ns,
            self._pending_at_ns,
            self._ts_ns,
            self._rate_per_s,
        )

    def state_text(self) -> str:
        """The state to persist, as a JSON object (None fields are left out)."""
        total, raw, base, ts_ns = self._total, self._raw, self._base, self._ts_ns
        if total is None or raw is None or base is None or ts_ns is None:
            return _encode({k: v for k, v in self.state.to_json().items() if v is not None})
        text = f'{{"kind":"total","total":{total},"raw":{raw},"base":{base},"ts_ns":{ts_ns}'
        if self._rate_per_s is not None:
            text += f',"rate_per_s":{self._rate_per_s!r}'
        if self._pending_raw is not None:
            pending = (self._pending_raw, self._pending_ts_ns, self._pending_at_ns)
            text += ',"pending_raw":{},"pending_ts_ns":{},"pending_at_ns":{}'.format(
                *("null" if v is None else v for v in pending)
            )
        return text + "}"

    def step(
        self,
        value: int | None,
        quality: Quality,
        ts_ns: int,
        at_ns: int,
        message_id: str | None = None,
    ) -> Step:
        """Apply one reading received at `at_ns` and stamped `ts_ns`."""
        if quality is not _GOOD or value is None:
            return self._nothing(Decision.BAD_QUALITY, ts_ns)
        if not 0 <= value < self.modulus:
            return self._nothing(Decision.OUT_OF_RANGE, ts_ns)
        base = self._base
        if self._total is None or self._raw is None or base is None:
            total = self.initial_total if self.initial_total is not None else value
            self._total, self._raw, self._base, self._ts_ns = total, value, value, ts_ns
            self._rate_per_s = None
            self._clear_pending()
            return Step(Decision.FIRST, 0, total, value, ts_ns, True)
        band_low = base - self.max_correction
        if self._pending_raw is None:
            if value == self._raw:
                return self._nothing(Decision.UNCHANGED, ts_ns)
            if value > base:
                return self._accept(Decision.INCREASE, value - base, value, ts_ns, value)
            if value >= band_low:
                return self._accept(Decision.CORRECTION, 0, value, ts_ns, base)
            self._pending_raw, self._pending_ts_ns, self._pending_at_ns = value, ts_ns, at_ns
            return self._nothing(Decision.DROP, ts_ns)
        if value >= band_low:
            return self._accept(
                Decision.GLITCH, max(0, value - base), value, ts_ns, max(base, value)
            )
        if value == self._pending_raw:
            return self._nothing(Decision.UNCHANGED, ts_ns)
        return self._confirm_drop(value, ts_ns)

    def expire(self, now_ns: int) -> Step | None:
        """Confirm a drop that has stood for `confirm_after` as a rollover or reset."""
        value, ts_ns, at_ns = self._pending_raw, self._pending_ts_ns, self._pending_at_ns
        if value is None or at_ns is None or ts_ns is None:
            return None
        if now_ns - at_ns < self.confirm_after_ns:
            return None
        return self._confirm_drop(value, ts_ns)

    def _clear_pending(self) -> None:
        self._pending_raw = self._pending_ts_ns = self._pending_at_ns = None

    def _confirm_drop(self, value: int, ts_ns: int) -> Step:
        assert self._base is not None
        wrap = self.modulus - self._base + value
        if wrap <= min(self.max_step, self._units_possible_since_last(ts_ns)):
            return self._accept(Decision.ROLLOVER, wrap, value, ts_ns, value)
        return self._accept(Decision.RESET, value, value, ts_ns, value)

    def _units_possible_since_last(self, ts_ns: int) -> int | float:
        """The most units the counter can have made since the last accepted reading."""
        last = self._ts_ns
        if last is None:
            return math.inf
        elapsed_s = max((ts_ns - last) / NS_PER_S, 1.0)
        bounds = [math.inf]
        if self.max_rate_per_s is not None:
            bounds.append(math.ceil(self.max_rate_per_s * elapsed_s))
        observed = self._rate_per_s or 0.0  # no unit counted since the first reading: 0
        bounds.append(math.ceil(RATE_SLACK * observed * elapsed_s) + SLACK_UNITS)
        return min(bounds)

    def _accept(self, decision: Decision, delta: int, value: int, ts_ns: int, base: int) -> Step:
        """Take `value` as the register's value and `base` as its high-water mark."""
        total = self._total
        assert total is not None
        total += delta
        last = self._ts_ns
        if delta > 0 and last is not None and ts_ns > last:  # the averaged rate (units/s)
            rate = delta * NS_PER_S / (ts_ns - last)
            previous = self._rate_per_s
            self._rate_per_s = (
                rate if previous is None else (1 - RATE_WEIGHT) * previous + RATE_WEIGHT * rate
            )
        ts_ns = after(last, ts_ns)
        emit = value != self._raw
        self._total, self._raw, self._base, self._ts_ns = total, value, base, ts_ns
        if self._pending_raw is not None:
            self._clear_pending()
        return Step(decision, delta, total, value, ts_ns, emit)

    def _nothing(self, decision: Decision, ts_ns: int) -> Step:
        return Step(decision, 0, self._total or 0, self._raw, ts_ns, False)


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

    @property
    def pending(self) -> bool:
        """Never: nothing is ever held."""
        return False

    def state_text(self) -> str:
        """The state to persist, with the dedupe window (a restart must not recount)."""
        return _encode(
            {
                "kind": "increment",
                "total": self._total,
                "seen": list(self._seen),
                "ts_ns": self._ts_ns,
            }
        )

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
        if quality is not _GOOD:
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
