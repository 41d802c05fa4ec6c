"""The asset tree: sites, areas, lines, stations and the counters at each station."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from taktline.model.base import Slug, StrictModel

CounterSemantics = Literal["total", "increment"]


class Counter(StrictModel):
    """A production counter at a station.

    `total`: the source reports an absolute count (a PLC register of `bits` width) that the edge
    turns into a lifetime total surviving resets and rollovers. `increment`: each message carries
    a count (default 1).
    """

    name: Slug = Field(description="Role of the counter: produced, good, scrap, tested, ...")
    semantics: CounterSemantics = "total"
    bits: Literal[16, 32, 64] | None = Field(
        default=None, description="Register width of a `total` counter (default 32)."
    )
    initial_total: int | None = Field(
        default=None,
        ge=0,
        description="Lifetime total at the first reading (commissioning); default: the raw value.",
    )
    max_rate_per_min: float = Field(
        default=600.0,
        gt=0,
        description=(
            "Fastest plausible rate of a `total` counter. A drop of the register is a rollover only"
            " when the units it implies fit this rate since the last reading; otherwise a reset."
        ),
    )

    @model_validator(mode="after")
    def _bits_only_for_totals(self) -> Counter:
        if self.semantics == "increment" and self.bits is not None:
            raise ValueError("'bits' applies to counters with semantics 'total' only")
        return self

    @property
    def width(self) -> int:
        """Register width in bits (32 when not given)."""
        return self.bits or 32


class Station(StrictModel):
    """A station of a line (a test stand, a cell, a robot): where counters live."""

    id: Slug
    name: str
    counters: list[Counter] = Field(min_length=1)


class Target(StrictModel):
    """The line's plan: a takt time, or a number of units per shift."""

    takt_seconds: float | None = Field(default=None, gt=0)
    units_per_shift: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _exactly_one(self) -> Target:
        if (self.takt_seconds is None) == (self.units_per_shift is None):
            raise ValueError("give exactly one of 'takt_seconds' or 'units_per_shift'")
        return self


class Line(StrictModel):
    """A production line. Its `output` counter (`station/counter`) is what its screen counts."""

    id: Slug = Field(description="Unique in the plant: it names the line screen /lines/{id}.")
    name: str
    output: str = Field(description="The counter that counts the line's units: 'station/counter'.")
    target: Target
    shift_calendar: Slug = "default"
    stations: list[Station] = Field(min_length=1)


class Area(StrictModel):
    """An area of a site (final assembly, paint shop, body shop)."""

    id: Slug
    name: str
    lines: list[Line] = Field(min_length=1)


class Site(StrictModel):
    """A plant site."""

    id: Slug
    name: str
    areas: list[Area] = Field(min_length=1)
