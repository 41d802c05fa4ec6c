"""ISA-95 asset paths: `site/area/line/station` and the counters that live there."""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class CounterPath:
    """One counter: the station's asset path plus the counter's role name."""

    site: str
    area: str
    line: str
    station: str
    counter: str

    @classmethod
    def parse(cls, text: str) -> CounterPath:
        """Parse `site/area/line/station/counter`; raises ValueError on another shape.

        The levels are interned: thousands of counters share a few site, line and role names.
        """
        parts = text.strip("/").split("/")
        if len(parts) != 5 or not all(parts):
            raise ValueError(
                f"'{text}' is not a counter path: expected site/area/line/station/counter"
            )
        return cls(*map(sys.intern, parts))

    def __str__(self) -> str:
        return "/".join((self.site, self.area, self.line, self.station, self.counter))

    def tags(self) -> dict[str, str]:
        """The InfluxDB tag set of this counter."""
        return {
            "site": self.site,
            "area": self.area,
            "line": self.line,
            "station": self.station,
            "counter": self.counter,
        }
