"""First-pass yield of a line from its station counters, by a small table of rules.

The station is the output counter's station if its counters allow a rule, else the first other
station (plant file order) that does. The first rule whose counters the station has applies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from taktline.model.assets import Line


@dataclass(frozen=True, slots=True)
class YieldRule:
    """yield = sum(numerator counts) / sum(denominator counts), over the current shift."""

    basis: str
    numerator: tuple[str, ...]
    denominator: tuple[str, ...]

    @property
    def counters(self) -> frozenset[str]:
        """The counter names the rule needs."""
        return frozenset(self.numerator + self.denominator)


YIELD_RULES: tuple[YieldRule, ...] = (
    YieldRule("passed/tested", ("passed",), ("tested",)),
    YieldRule("passed/(passed+failed)", ("passed",), ("passed", "failed")),
    YieldRule("good/(good+scrap)", ("good",), ("good", "scrap")),
)


@dataclass(frozen=True, slots=True)
class LineYield:
    """The rule that applies to a line and the station it reads."""

    station: str
    rule: YieldRule

    @property
    def basis(self) -> str:
        """E.g. `eol: passed/tested`."""
        return f"{self.station}: {self.rule.basis}"

    def percent(self, shift_count: Callable[[str, str], int]) -> float | None:
        """The yield in % (capped at 100) from `shift_count(station, counter)`; None when the
        denominator is 0 (nothing tested this shift)."""
        denominator = sum(shift_count(self.station, name) for name in self.rule.denominator)
        if denominator <= 0:
            return None
        numerator = sum(shift_count(self.station, name) for name in self.rule.numerator)
        return round(min(100.0, 100 * numerator / denominator), 1)


def line_yield(line: Line) -> LineYield | None:
    """The yield rule of a line, or None when no station has the counters for one."""
    output_station = line.output.split("/", 1)[0]
    stations = sorted(line.stations, key=lambda station: station.id != output_station)
    for station in stations:
        names = {counter.name for counter in station.counters}
        for rule in YIELD_RULES:
            if rule.counters <= names:
                return LineYield(station.id, rule)
    return None
