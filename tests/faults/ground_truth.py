"""What InfluxDB holds against what the plant really made: per counter, units lost and units
counted twice.

For each counter InfluxDB is asked two things: its last lifetime total (`last("total")`, minus
the total the counter started from) and the sum of its deltas (`sum("delta")`). A unit missing
shows in either; a unit counted twice, or a point written again at another time, shows in
either too. Both must equal the ground truth.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from taktline.model.paths import CounterPath
from tests.fixtures.services import InfluxService

TAGS = ("site", "area", "line", "station", "counter")


@dataclass(frozen=True, slots=True)
class CounterCheck:
    """One counter: units made, and what InfluxDB says was stored (two ways)."""

    counter: str
    produced: int
    by_total: int
    """last(total) - the total the counter started from."""
    by_delta: int
    """sum(delta)."""

    @property
    def lost(self) -> int:
        return max(0, self.produced - min(self.by_total, self.by_delta))

    @property
    def duplicated(self) -> int:
        return max(0, max(self.by_total, self.by_delta) - self.produced)


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """Every counter of one scenario, with notes on what happened on the way."""

    scenario: str
    counters: tuple[CounterCheck, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def produced(self) -> int:
        return sum(check.produced for check in self.counters)

    @property
    def stored(self) -> int:
        return sum(check.by_total for check in self.counters)

    @property
    def lost(self) -> int:
        return sum(check.lost for check in self.counters)

    @property
    def duplicated(self) -> int:
        return sum(check.duplicated for check in self.counters)

    @property
    def exact(self) -> bool:
        """Every counter's stored units equal its produced units, by total and by deltas."""
        return all(c.by_total == c.by_delta == c.produced for c in self.counters)

    def with_note(self, note: str) -> ScenarioResult:
        return ScenarioResult(self.scenario, self.counters, (*self.notes, note))

    def details(self) -> str:
        """A per-counter table (for assertion messages)."""
        lines = [f"{'counter':<42} {'produced':>9} {'by total':>9} {'by delta':>9}"]
        for c in self.counters:
            mark = "" if c.by_total == c.by_delta == c.produced else "  <- MISMATCH"
            lines.append(f"{c.counter:<42} {c.produced:>9} {c.by_total:>9} {c.by_delta:>9}{mark}")
        return "\n".join([*lines, *self.notes])

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "produced": self.produced,
            "stored": self.stored,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "exact": self.exact,
            "notes": list(self.notes),
            "counters": [
                {
                    "counter": c.counter,
                    "produced": c.produced,
                    "stored_by_total": c.by_total,
                    "stored_by_delta": c.by_delta,
                    "lost": c.lost,
                    "duplicated": c.duplicated,
                }
                for c in self.counters
            ],
        }


def stored_in_influxdb(influx: InfluxService, database: str) -> dict[str, tuple[int, int]]:
    """Per counter path: (last total, sum of deltas) of the measurement `production`."""
    rows = influx.query(
        'SELECT last("total"), sum("delta") FROM "production" GROUP BY *', database=database
    )
    return {"/".join(row[tag] for tag in TAGS): (row["last"], row["sum"]) for row in rows}


def check(
    scenario: str,
    truth: Mapping[CounterPath, int],
    starts: Mapping[CounterPath, int],
    stored: Mapping[str, tuple[int, int]],
) -> ScenarioResult:
    """Compare every counter of `truth` (units made) with what InfluxDB stored; `starts` holds
    the lifetime total each counter started from. A counter InfluxDB lacks stored nothing."""
    checks = []
    for path in sorted(truth, key=str):
        last_total, delta_sum = stored.get(str(path), (starts[path], 0))
        checks.append(CounterCheck(str(path), truth[path], last_total - starts[path], delta_sum))
    return ScenarioResult(scenario, tuple(checks))


Record = Callable[[ScenarioResult], None]
"""Adds a scenario's result to the session's table (the `record_result` fixture)."""
