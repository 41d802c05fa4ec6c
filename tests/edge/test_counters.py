"""Counter semantics: every row of the decision table, persistence, a long random walk, and
hypothesis histories of production, resets, rollovers and glitches against the units made."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import hypothesis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.counters import (
    NS_PER_S,
    Decision,
    IncrementCounter,
    TotalCounter,
    TotalRules,
    TotalState,
    counter_logic,
    default_max_step,
)
from taktline.model.assets import Counter
from taktline.records import Quality

M16 = 1 << 16
GOOD = Quality.GOOD


def feed(counter: TotalCounter, *values: int, start_s: int = 0) -> list[tuple[Decision, int]]:
    """Feed GOOD readings one second apart; return (decision, delta) per reading."""
    out = []
    for index, value in enumerate(values):
        at = (start_s + index) * NS_PER_S
        step = counter.step(value, GOOD, at, at)
        out.append((step.decision, step.delta))
    return out


def test_first_reading_takes_initial_total_or_raw() -> None:
    with_initial = TotalCounter(16, initial_total=16_250_210)
    step = with_initial.step(123, GOOD, 1, 1)
    assert (step.decision, step.delta, step.total, step.emit) == (
        Decision.FIRST,
        0,
        16_250_210,
        True,
    )
    without = TotalCounter(16)
    assert without.step(123, GOOD, 1, 1).total == 123


@pytest.mark.parametrize(
    ("values", "expected", "total"),
    [
        # increase, same value
        (
            (10, 12, 12, 15),
            [(Decision.INCREASE, 2), (Decision.UNCHANGED, 0), (Decision.INCREASE, 3)],
            15,
        ),
        # correction down by 2, climbs back: counted only above the high-water mark
        (
            (10, 8, 9, 10, 11),
            [
                (Decision.CORRECTION, 0),
                (Decision.CORRECTION, 0),
                (Decision.CORRECTION, 0),
                (Decision.INCREASE, 1),
            ],
            11,
        ),
        # a bad 0 read, then the counter is back: glitch, units in between still count
        ((1000, 0, 1003), [(Decision.DROP, 0), (Decision.GLITCH, 3)], 1003),
        # glitch that returns slightly below (within the correction band): no recount
        (
            (1000, 0, 999, 1001),
            [(Decision.DROP, 0), (Decision.GLITCH, 0), (Decision.INCREASE, 1)],
            1001,
        ),
        # reset to 0, next reading 1: confirmed, counts from zero
        ((1000, 0, 1, 2), [(Decision.DROP, 0), (Decision.RESET, 1), (Decision.INCREASE, 1)], 1002),
        # a repeated dropped value is no new evidence: still pending
        ((1000, 0, 0, 4), [(Decision.DROP, 0), (Decision.UNCHANGED, 0), (Decision.RESET, 4)], 1004),
        # rollover of a 16-bit register counting 10/s, confirmed by the next reading
        (
            (M16 - 30, M16 - 20, M16 - 10, 2, 5),
            [
                (Decision.INCREASE, 10),
                (Decision.INCREASE, 10),
                (Decision.DROP, 0),
                (Decision.ROLLOVER, 10 + 5),
            ],
            M16 + 5,
        ),
        # a bad 0 read at the top of the range is a glitch, not a rollover
        ((M16 - 6, 0, M16 - 5), [(Decision.DROP, 0), (Decision.GLITCH, 1)], M16 - 5),
    ],
)
def test_decision_table(
    values: tuple[int, ...], expected: list[tuple[Decision, int]], total: int
) -> None:
    counter = TotalCounter(16)
    decisions = feed(counter, *values)
    assert decisions[0] == (Decision.FIRST, 0)
    assert decisions[1:] == expected
    assert counter.total == total


def test_bad_quality_and_out_of_range_change_nothing() -> None:
    counter = TotalCounter(16)
    counter.step(100, GOOD, 0, 0)
    before = counter.state
    assert counter.step(0, Quality.BAD, 1, 1).decision is Decision.BAD_QUALITY
    assert counter.step(5, Quality.UNCERTAIN, 2, 2).decision is Decision.BAD_QUALITY
    assert counter.step(None, GOOD, 3, 3).decision is Decision.BAD_QUALITY
    assert counter.step(M16, GOOD, 4, 4).decision is Decision.OUT_OF_RANGE
    assert counter.step(-1, GOOD, 5, 5).decision is Decision.OUT_OF_RANGE
    assert counter.state == before
    # bad quality during a pending drop neither confirms nor clears it
    counter.step(0, GOOD, 6, 6)
    pending = counter.state
    assert counter.step(1, Quality.BAD, 7, 7).decision is Decision.BAD_QUALITY
    assert counter.state == pending


def test_bad_quality_before_first_reading_does_not_initialise() -> None:
    counter = TotalCounter(16, initial_total=500)
    counter.step(7, Quality.BAD, 0, 0)
    assert counter.total is None
    assert counter.step(9, GOOD, 1, 1).decision is Decision.FIRST


def test_expire_confirms_a_reset_after_confirm_after() -> None:
    counter = TotalCounter(32, rules=TotalRules(confirm_after_s=5))
    counter.step(5000, GOOD, 0, 0)
    counter.step(3, GOOD, 111, 1 * NS_PER_S)
    assert counter.expire(5 * NS_PER_S) is None  # 4 s: still held
    step = counter.expire(6 * NS_PER_S)
    assert step is not None
    assert (step.decision, step.delta, step.total, step.ts_ns) == (Decision.RESET, 3, 5003, 111)
    assert counter.expire(60 * NS_PER_S) is None  # nothing pending any more
    assert feed(counter, 4, start_s=7) == [(Decision.INCREASE, 1)]


def test_expire_confirms_a_rollover() -> None:
    counter = TotalCounter(16)
    counter.step(M16 - 1, GOOD, 0, 0)
    counter.step(0, GOOD, 1, 1)
    step = counter.expire(10 * NS_PER_S)
    assert step is not None and (step.decision, step.delta) == (Decision.ROLLOVER, 1)


def test_implausible_wrap_is_a_reset() -> None:
    counter = TotalCounter(16)
    assert default_max_step(16) == 4096
    feed(counter, 40_000)
    assert feed(counter, 10, 11, start_s=1) == [(Decision.DROP, 0), (Decision.RESET, 11)]


def test_emit_only_when_raw_changes() -> None:
    counter = TotalCounter(16)
    emits = []
    for index, value in enumerate((10, 10, 11, 0, 11, 9)):
        emits.append(counter.step(value, GOOD, index, index).emit)
    assert emits == [True, False, True, False, False, True]


def test_total_state_round_trips_through_json() -> None:
    counter = TotalCounter(16, initial_total=7)
    feed(counter, 100, 101, 0)
    restored = TotalCounter(16, state=TotalState.from_json(json.loads(counter.state_text())))
    assert restored.state == counter.state
    assert feed(restored, 102, start_s=3) == [(Decision.GLITCH, 1)]
    assert restored.total == 9


def test_increment_counts_quantities_and_drops_duplicates() -> None:
    counter = IncrementCounter(initial_total=10, dedupe_window=2)
    assert counter.step(None, GOOD, 0, 0, "a").delta == 1
    assert counter.step(3, GOOD, 1, 1, "b").delta == 3
    assert counter.step(3, GOOD, 2, 2, "b").decision is Decision.DUPLICATE
    assert counter.step(1, Quality.BAD, 3, 3, "c").decision is Decision.BAD_QUALITY
    assert counter.step(-2, GOOD, 3, 3, "d").decision is Decision.OUT_OF_RANGE
    assert counter.step(1, GOOD, 4, 4, None).delta == 1  # no id: always counted
    assert counter.total == 15
    counter.step(1, GOOD, 5, 5, "e")  # window 2: "a" is forgotten ("b" was refreshed)
    assert counter.step(1, GOOD, 6, 6, "b").decision is Decision.DUPLICATE
    assert counter.step(1, GOOD, 7, 7, "a").decision is Decision.INCREMENT


def test_increment_state_keeps_the_dedupe_window() -> None:
    counter = IncrementCounter()
    counter.step(1, GOOD, 0, 0, "m1")
    restored = IncrementCounter(state=json.loads(counter.state_text()))
    assert restored.total == 1
    assert restored.step(1, GOOD, 1, 1, "m1").decision is Decision.DUPLICATE


def test_counter_logic_follows_the_plant_counter() -> None:
    total = counter_logic(Counter(name="passed", bits=16), None)
    assert isinstance(total, TotalCounter) and total.modulus == M16
    increment = counter_logic(
        Counter(name="tested", semantics="increment"), {"kind": "increment", "total": 4}
    )
    assert isinstance(increment, IncrementCounter) and increment.total == 4


@dataclass
class Plc:
    """A simulated 16-bit register with its ground truth of units produced."""

    register: int
    units: int = 0


def test_random_walk_against_ground_truth() -> None:
    """Thousands of steps with rollovers, resets, glitches, corrections and bad reads.

    The simulation avoids the documented ambiguities (see edge.counters): resets happen away
    from the top of the range and from values above the correction band, and the register is
    read before it climbs back over its old value.
    """
    rng = random.Random(20261126)
    plc = Plc(register=M16 - 3000)
    counter = TotalCounter(16, initial_total=1_000_000)
    t = 0
    counter.step(plc.register, GOOD, t, t)
    seen = {d: 0 for d in Decision}
    last_total = 1_000_000
    for _ in range(40_000):
        t += NS_PER_S // 4
        event = rng.random()
        if event < 0.001 and 100 < plc.register < M16 - 5000:
            plc.register = 0  # reset (power cycle): units keep coming from zero
        elif event < 0.03:
            seen[counter.step(0, GOOD, t, t).decision] += 1  # a bad 0 read between good ones
            t += 1
        elif event < 0.05:
            step = counter.step(rng.randrange(M16), Quality.BAD, t, t)
            assert step.delta == 0
            t += 1
        elif event < 0.07 and plc.register > 2:
            corrected = plc.register - rng.randint(1, 2)  # the PLC corrects down, then back
            counter.step(corrected, GOOD, t, t)
            t += 1
        made = rng.choice((0, 0, 1, 1, 2, 5, 40, 300))
        plc.register = (plc.register + made) % M16
        plc.units += made
        step = counter.step(plc.register, GOOD, t, t)
        seen[step.decision] += 1
        if rng.random() < 0.02:
            t += 6 * NS_PER_S  # a quiet spell: expiry confirms what is pending
            expired = counter.expire(t)
            if expired is not None:
                seen[expired.decision] += 1
        assert counter.total is not None
        assert counter.total >= last_total, "the total went down"
        assert counter.total <= 1_000_000 + plc.units, "counted units that were not made"
        last_total = counter.total
        if counter.state.pending_raw is None:
            assert counter.total == 1_000_000 + plc.units
    t += 6 * NS_PER_S
    counter.expire(t)
    assert counter.total == 1_000_000 + plc.units
    for decision in (Decision.ROLLOVER, Decision.RESET, Decision.GLITCH, Decision.CORRECTION):
        assert seen[decision] >= 5, f"the walk produced {decision} only {seen[decision]} times"


def test_a_wrap_faster_than_the_line_can_run_is_a_reset_not_a_rollover() -> None:
    """A PLC reset just below the top of a 16-bit register looks like a wrap by value alone;
    at 10 units/s the ~150 units that wrap would imply in one second are impossible."""
    counter = TotalCounter(16, max_rate_per_s=10.0)
    steps = feed(counter, M16 - 150, 0, 1)
    assert steps[1:] == [(Decision.DROP, 0), (Decision.RESET, 1)]
    assert counter.total == M16 - 150 + 1


def test_a_wrap_within_the_line_rate_is_a_rollover() -> None:
    counter = TotalCounter(16, max_rate_per_s=10.0)
    steps = feed(counter, M16 - 6, M16 - 5, M16 - 4, M16 - 3, 2, 4)  # counting 1/s, then wraps
    assert steps[4:] == [(Decision.DROP, 0), (Decision.ROLLOVER, 3 + 4)]
    assert counter.total == M16 - 3 + 3 + 4


def test_a_counter_that_never_counted_is_reset_not_wrapped() -> None:
    """`failed` has counted nothing since its first reading near the top; a PLC reset to 0
    15 s later would be a 150-unit wrap at the configured 10/s, but its own rate is zero."""
    counter = TotalCounter(16, max_rate_per_s=10.0)
    counter.step(M16 - 150, GOOD, 0, 0)
    assert counter.step(0, GOOD, 15 * NS_PER_S, 15 * NS_PER_S).decision is Decision.DROP
    step = counter.expire(21 * NS_PER_S)
    assert step is not None and (step.decision, step.delta) == (Decision.RESET, 0)


def test_a_larger_wrap_after_a_long_silence_is_a_rollover() -> None:
    """An edge that was away for ten minutes may see hundreds of units across the wrap."""
    counter = TotalCounter(16, max_rate_per_s=10.0)
    feed(counter, M16 - 403, M16 - 402, M16 - 401, M16 - 400)  # counting 1/s
    later = 600 * NS_PER_S
    assert counter.step(100, GOOD, later, later).decision is Decision.DROP
    step = counter.step(101, GOOD, later + NS_PER_S, later + NS_PER_S)
    assert (step.decision, step.delta) == (Decision.ROLLOVER, 400 + 101)


def test_counter_logic_takes_the_rate_from_the_plant_model() -> None:
    logic = counter_logic(Counter(name="passed", bits=16, max_rate_per_min=120), None)
    assert isinstance(logic, TotalCounter)
    assert logic.max_rate_per_s == 2.0


def test_updates_in_the_same_instant_get_distinct_increasing_timestamps() -> None:
    total = TotalCounter(16)
    stamps = [total.step(value, GOOD, 5_000, 5_000).ts_ns for value in (10, 11, 12)]
    assert stamps == [5_000, 6_000, 7_000]
    restored = TotalCounter(16, state=TotalState.from_json(json.loads(total.state_text())))
    assert restored.step(13, GOOD, 4_000, 4_000).ts_ns == 8_000

    increment = IncrementCounter()
    stamps = [increment.step(1, GOOD, 7_000, 7_000).ts_ns for _ in range(3)]
    assert stamps == [7_000, 8_000, 9_000]
    again = IncrementCounter(state=json.loads(increment.state_text()))
    assert again.step(1, GOOD, 7_000, 7_000).ts_ns == 10_000


def test_a_rare_counter_reset_near_the_top_is_a_reset() -> None:
    """`failed` counts about one unit a minute; 20 s after its last unit it drops from near the
    top to 0 and nothing follows. The configured 10 units/s would allow a 150-unit wrap; its own
    rate does not."""
    counter = TotalCounter(16, max_rate_per_s=10.0)
    for minute, value in enumerate(range(M16 - 153, M16 - 149)):
        at = minute * 60 * NS_PER_S
        counter.step(value, GOOD, at, at)
    dropped_at = (3 * 60 + 20) * NS_PER_S
    assert counter.step(0, GOOD, dropped_at, dropped_at).decision is Decision.DROP
    step = counter.expire(dropped_at + 6 * NS_PER_S)
    assert step is not None and (step.decision, step.delta) == (Decision.RESET, 0)


def test_a_rare_counter_still_rolls_over() -> None:
    counter = TotalCounter(16, max_rate_per_s=10.0)
    for minute, value in enumerate(range(M16 - 3, M16)):
        at = minute * 60 * NS_PER_S
        counter.step(value, GOOD, at, at)
    at = 3 * 60 * NS_PER_S
    counter.step(0, GOOD, at, at)
    step = counter.expire(at + 6 * NS_PER_S)
    assert step is not None and (step.decision, step.delta) == (Decision.ROLLOVER, 1)


def test_state_text_is_the_state_as_json_in_every_shape() -> None:
    counter = TotalCounter(16, initial_total=7)
    shapes = [counter.state_text()]  # before the first reading
    counter.step(100, GOOD, 0, 0)
    shapes.append(counter.state_text())  # no rate yet
    counter.step(104, GOOD, NS_PER_S, NS_PER_S)
    shapes.append(counter.state_text())  # with a rate
    counter.step(3, GOOD, 2 * NS_PER_S, 2 * NS_PER_S + 5)
    assert counter.pending
    shapes.append(counter.state_text())  # with a pending drop
    restored = [TotalState.from_json(json.loads(text)) for text in shapes]
    assert restored[-1] == counter.state
    assert restored[0] == TotalState()
    assert restored[1] == TotalState(total=7, raw=100, base=100, ts_ns=0)
    assert restored[2].rate_per_s == 4.0
    assert (restored[3].pending_raw, restored[3].pending_at_ns) == (3, 2 * NS_PER_S + 5)
    assert all(json.loads(text)["kind"] == "total" for text in shapes)
    partial = TotalCounter(16, state=TotalState(total=8))  # a sparse persisted state
    assert json.loads(partial.state_text()) == {"kind": "total", "total": 8}


def test_pending_holds_from_a_drop_until_it_is_decided() -> None:
    counter = TotalCounter(16, rules=TotalRules(confirm_after_s=5))
    feed(counter, 1000)
    assert not counter.pending
    feed(counter, 0, start_s=1)
    assert counter.pending
    assert counter.expire(5 * NS_PER_S) is None and counter.pending
    step = counter.expire(6 * NS_PER_S)
    assert step is not None and step.decision is Decision.RESET
    assert not counter.pending
    feed(counter, 0, 1001, start_s=7)  # unchanged, then a glitch-free climb
    assert not counter.pending
    assert not IncrementCounter().pending


_EVENTS = st.sampled_from(["make", "make", "make", "reset", "glitch", "bad", "correct", "quiet"])
_WARM_UP = 12
"""Steps at the line's rate before anything else: until then a wrap is not yet plausible."""


@settings(max_examples=1000, deadline=None)
@given(
    rate=st.integers(1, 300),
    headroom=st.integers(1, 6000),
    history=st.lists(
        st.tuples(_EVENTS, st.sampled_from((0.5, 0.75, 1.0, 1.25, 1.5))), max_size=400
    ),
)
def test_any_history_totals_exactly_the_units_made(
    rate: int, headroom: int, history: list[tuple[str, float]]
) -> None:
    """Hypothesis: a line making about `rate` units a reading (half to one and a half times),
    with resets, rollovers, glitches, bad reads, corrections and quiet spells in any order; the
    lifetime total equals the units made once nothing is pending. The history stays inside what
    edge.counters documents as decidable: wraps within three times the observed rate, resets away
    from the top of the range and above the correction band, the register read before it
    climbs back over its old value (until a reading confirmed the reset), and no second reset
    before a reading confirmed the first."""
    plc = Plc(register=M16 - _WARM_UP * rate - headroom)  # the top is `headroom` after warm-up
    counter = TotalCounter(16, initial_total=0)
    t = 0
    counter.step(plc.register, GOOD, t, t)
    just_reset = False
    seen: set[Decision] = set()
    for event, factor in [("make", 1.0)] * _WARM_UP + history:
        between = t + NS_PER_S // 2  # an extra reading comes half way to the next one
        t += NS_PER_S
        made = max(1, round(rate * factor))
        resets = (
            event == "reset"
            and not just_reset
            and 100 + made + 2 * rate < plc.register < M16 - 5000  # confirmed below it
        )
        just_reset = resets
        if resets:
            plc.register = 0
        elif event == "glitch":
            counter.step(0, GOOD, between, between)
        elif event == "bad":
            assert counter.step(plc.register ^ 0x5A5A, Quality.BAD, between, between).delta == 0
        elif event == "correct" and plc.register > 2:
            counter.step(plc.register - 2, GOOD, between, between)
        elif event == "quiet":
            t += 6 * NS_PER_S
            counter.expire(t - NS_PER_S)
        plc.register = (plc.register + made) % M16
        plc.units += made
        before = counter.total or 0
        seen.add(counter.step(plc.register, GOOD, t, t).decision)
        assert (counter.total or 0) >= before, "the total went down"
        assert (counter.total or 0) <= plc.units, "counted units that were not made"
    t += 6 * NS_PER_S
    expired = counter.expire(t)
    seen |= {expired.decision} if expired is not None else set()
    for decision in seen & {Decision.ROLLOVER, Decision.RESET, Decision.GLITCH}:
        hypothesis.event(decision.value)  # pytest --hypothesis-show-statistics shows how often
    assert counter.total == plc.units
