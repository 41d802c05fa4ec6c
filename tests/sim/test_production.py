"""The production model: start values, unit outcomes, rollovers, resets and the ground truth."""

from __future__ import annotations

import pytest

from taktline.model import CounterPath, Plant
from taktline.sim.production import (
    RESET_FLOOR,
    Production,
    counts_unit,
    line_rate_per_min,
)

FA1 = ("fa1", "eol")
FA2 = ("fa2", "eol")


def path(line: str, counter: str) -> CounterPath:
    area = "paint" if line == "paint1" else "final"
    station = "topcoat" if line == "paint1" else "eol"
    return CounterPath("neustadt", area, line, station, counter)


def test_sixteen_bit_registers_start_near_the_top_and_wide_ones_low(example_plant: Plant) -> None:
    registers = Production(example_plant, seed=3, pass_ratio=0.97).registers()
    for counter in ("tested", "passed", "failed"):
        assert 65_336 <= registers[path("fa1", counter)] <= 65_436
        assert 100 <= registers[path("fa2", counter)] <= 9_999


def test_the_seed_fixes_the_start_values(example_plant: Plant) -> None:
    first = Production(example_plant, seed=11, pass_ratio=0.97).registers()
    again = Production(example_plant, seed=11, pass_ratio=0.97).registers()
    other = Production(example_plant, seed=12, pass_ratio=0.97).registers()
    assert first == again
    assert first != other


def test_every_unit_is_tested_and_either_passed_or_failed(example_plant: Plant) -> None:
    production = Production(example_plant, seed=5, pass_ratio=0.5)
    for _ in range(400):
        changed = {change.path.counter for change in production.produce("fa2")}
        assert "tested" in changed
        assert len(changed & {"passed", "failed"}) == 1
    truth = production.truth()
    assert truth[path("fa2", "tested")] == 400
    assert truth[path("fa2", "passed")] + truth[path("fa2", "failed")] == 400
    assert 100 < truth[path("fa2", "failed")] < 300
    assert truth[path("fa1", "tested")] == 0


@pytest.mark.parametrize(
    ("name", "station", "passed", "counts"),
    [
        ("passed", {"passed", "failed"}, False, False),
        ("passed", {"passed"}, False, True),
        ("good", {"good", "scrap"}, True, True),
        ("scrap", {"good", "scrap"}, True, False),
        ("scrap", {"scrap"}, False, True),
        ("produced", {"produced"}, False, True),
        ("rework", {"rework", "good", "scrap"}, True, True),
    ],
)
def test_which_counters_a_unit_increments(
    name: str, station: set[str], passed: bool, counts: bool
) -> None:
    assert counts_unit(name, frozenset(station), passed) is counts


def test_a_sixteen_bit_register_wraps_from_65535_to_0(example_plant: Plant) -> None:
    production = Production(example_plant, seed=1, pass_ratio=1.0)
    tested = path("fa1", "tested")
    start = production.registers()[tested]
    seen = [start]
    for _ in range(2**16 - start + 5):
        production.produce("fa1")
        seen.append(production.registers()[tested])
    assert seen[2**16 - start - 1 : 2**16 - start + 2] == [65_535, 0, 1]
    assert production.truth()[tested] == 2**16 - start + 5
    assert production.stats().rollovers_by_counter[tested] == 1


def test_without_resets_the_truth_is_the_registers_increase(example_plant: Plant) -> None:
    production = Production(example_plant, seed=9, pass_ratio=0.9)
    start = production.registers()
    for _ in range(300):
        for line in ("fa1", "fa2", "paint1"):
            production.produce(line)
    end, truth = production.registers(), production.truth()
    for counter_path, counter in example_plant.counters():
        assert truth[counter_path] == (end[counter_path] - start[counter_path]) % 2**counter.width
    assert production.stats().rollovers >= 2


def test_a_reset_zeroes_the_station_and_keeps_the_truth(example_plant: Plant) -> None:
    production = Production(example_plant, seed=2, pass_ratio=0.97)
    for _ in range(20):
        production.produce("fa2")
    truth = production.truth()
    assert production.resettable(FA2)
    changes = production.reset(FA2)
    assert {change.path.counter: change.value for change in changes} == {
        "tested": 0,
        "passed": 0,
        "failed": 0,
    }
    assert production.truth() == truth
    assert production.registers()[path("fa2", "tested")] == 0
    assert production.registers()[path("fa1", "tested")] > 0
    stats = production.stats()
    assert stats.resets == 1
    assert stats.resets_by_counter[path("fa2", "failed")] == 1
    assert stats.resets_by_counter[path("fa1", "failed")] == 0


def test_a_station_is_resettable_only_when_every_register_is_above_the_floor(
    example_plant: Plant,
) -> None:
    production = Production(example_plant, seed=4, pass_ratio=1.0)
    production.reset(FA2)
    assert not production.resettable(FA2)
    for _ in range(RESET_FLOOR + 1):
        production.produce("fa2")
    # tested and passed are above the floor now, failed (pass ratio 1) still at 0
    assert production.registers()[path("fa2", "tested")] > RESET_FLOOR
    assert not production.resettable(FA2)
    assert production.resettable(FA1)


def test_an_unknown_station_cannot_be_reset(example_plant: Plant) -> None:
    with pytest.raises(KeyError, match="no station 'nope'"):
        Production(example_plant, seed=1, pass_ratio=0.97).reset(("fa1", "nope"))


def test_line_rates_come_from_takt_or_units_per_shift(example_plant: Plant) -> None:
    rates = {placed.line.id: line_rate_per_min(placed.line) for placed in example_plant.lines()}
    assert rates == {"fa1": 1.0, "fa2": pytest.approx(60 / 72), "paint1": pytest.approx(0.875)}


def test_pass_ratio_outside_0_to_1_is_refused(example_plant: Plant) -> None:
    with pytest.raises(ValueError, match="pass_ratio"):
        Production(example_plant, seed=1, pass_ratio=1.5)
