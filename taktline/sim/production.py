"""The simulated production: counter registers, units, rollovers, resets and the ground truth.

No I/O here: `Production` changes numbers and says what changed; the simulator writes them out.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from taktline.model.assets import Counter, Line
from taktline.model.paths import CounterPath
from taktline.model.plant import Plant

ROLLOVER_HEADROOM = (100, 200)
"""16-bit registers start this many units (a seeded pick) below 65,536: a rollover comes soon."""

WIDE_START = (100, 9_999)
"""32/64-bit registers start at a seeded value in this range."""

RESET_FLOOR = 50
"""A random reset only happens when every register of the station is above this (observable)."""

_FAIL_SIDE_OF = {"passed": "failed", "good": "scrap"}
"""Counters a unit increments when it passes, and their partner counting the failures."""

_PASS_SIDE_OF = {fail: good for good, fail in _FAIL_SIDE_OF.items()}

StationKey = tuple[str, str]
"""(line id, station id)."""


@dataclass(frozen=True, slots=True)
class Change:
    """A register that changed: its new value and the units it counted (0 for a reset)."""

    path: CounterPath
    value: int
    delta: int


@dataclass(frozen=True, slots=True)
class SimStats:
    """What happened to the registers so far."""

    resets: int
    rollovers: int
    resets_by_counter: Mapping[CounterPath, int]
    rollovers_by_counter: Mapping[CounterPath, int]


def line_rate_per_min(line: Line) -> float:
    """Units per minute from the line's target: 60 / takt, or units per (8 h) shift / 480."""
    if line.target.takt_seconds is not None:
        return 60.0 / line.target.takt_seconds
    assert line.target.units_per_shift is not None
    return line.target.units_per_shift / 480.0


def counts_unit(name: str, station_counters: frozenset[str], passed: bool) -> bool:
    """Whether one unit (that passed or failed) increments the counter `name` of a station.

    `passed`/`good` count passing units when the station also has `failed`/`scrap`, else every
    unit; `failed`/`scrap` count failing units; every other counter counts every unit.
    """
    if name in _FAIL_SIDE_OF:
        return passed or _FAIL_SIDE_OF[name] not in station_counters
    if name in _PASS_SIDE_OF:
        return not passed
    return True


class Production:
    """Registers and ground truth of every counter of a plant."""

    def __init__(self, plant: Plant, *, seed: int | None, pass_ratio: float) -> None:
        if not 0.0 <= pass_ratio <= 1.0:
            raise ValueError(f"pass_ratio must be within 0..1, not {pass_ratio}")
        self._rng = random.Random(seed)
        self._pass_ratio = pass_ratio
        self._counters: dict[CounterPath, Counter] = dict(plant.counters())
        self._stations: dict[StationKey, tuple[CounterPath, ...]] = {}
        for path in self._counters:
            key = (path.line, path.station)
            self._stations[key] = (*self._stations.get(key, ()), path)
        self._registers = {path: self._start_value(c.width) for path, c in self._counters.items()}
        self._truth = dict.fromkeys(self._counters, 0)
        self._resets = 0
        self._resets_by_counter = dict.fromkeys(self._counters, 0)
        self._rollovers_by_counter = dict.fromkeys(self._counters, 0)

    def _start_value(self, bits: int) -> int:
        if bits == 16:
            return 2**16 - self._rng.randint(*ROLLOVER_HEADROOM)
        return self._rng.randint(*WIDE_START)

    @property
    def stations(self) -> tuple[StationKey, ...]:
        """Every (line id, station id) that has counters."""
        return tuple(self._stations)

    def counter(self, path: CounterPath) -> Counter:
        """The plant's counter at `path` (KeyError when there is none)."""
        return self._counters[path]

    def registers(self) -> dict[CounterPath, int]:
        """Current register values."""
        return dict(self._registers)

    def truth(self) -> dict[CounterPath, int]:
        """Units counted per counter since start, whatever the registers did."""
        return dict(self._truth)

    def stats(self) -> SimStats:
        """Resets and rollovers so far."""
        return SimStats(
            resets=self._resets,
            rollovers=sum(self._rollovers_by_counter.values()),
            resets_by_counter=dict(self._resets_by_counter),
            rollovers_by_counter=dict(self._rollovers_by_counter),
        )

    def produce(self, line_id: str) -> list[Change]:
        """One unit passes every station of the line; returns the registers it incremented."""
        changes: list[Change] = []
        for (line, _station), paths in self._stations.items():
            if line != line_id:
                continue
            names = frozenset(path.counter for path in paths)
            passed = self._rng.random() < self._pass_ratio
            changes += [
                self._count(path) for path in paths if counts_unit(path.counter, names, passed)
            ]
        return changes

    def _count(self, path: CounterPath) -> Change:
        modulus = 2 ** self._counters[path].width
        value = (self._registers[path] + 1) % modulus
        if value == 0:
            self._rollovers_by_counter[path] += 1
        self._registers[path] = value
        self._truth[path] += 1
        return Change(path, value, 1)

    def resettable(self, station: StationKey) -> bool:
        """Whether a reset of the station now would show as a drop of every register."""
        return all(self._registers[path] > RESET_FLOOR for path in self._stations[station])

    def reset(self, station: StationKey) -> list[Change]:
        """Every register of the station to 0 (a PLC power cycle); the ground truth stays."""
        paths = self._stations.get(station)
        if paths is None:
            raise KeyError(f"no station '{station[1]}' with counters on line '{station[0]}'")
        self._resets += 1
        for path in paths:
            self._registers[path] = 0
            self._resets_by_counter[path] += 1
        return [Change(path, 0, 0) for path in paths]

    def random_delay(self, rate_per_s: float) -> float:
        """An exponential waiting time for a Poisson process of this rate."""
        return self._rng.expovariate(rate_per_s)
