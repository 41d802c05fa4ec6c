"""What the server keeps across restarts: each line's current shift, finished shifts, the audit.

Plain data, written by `server.store` and produced by `server.state` and the write endpoints.
Counters are named line-relative as `station/counter`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True, slots=True)
class ShiftRecord:
    """A line's running shift: the totals at its start, the latest totals, the corrections."""

    line: str
    shift: str
    start: dt.datetime
    end: dt.datetime
    target: int
    output: str
    baselines: Mapping[str, int] = field(default_factory=dict)
    latest: Mapping[str, int] = field(default_factory=dict)
    corrections: Mapping[str, int] = field(default_factory=dict)

    def output_count(self) -> int:
        """The output counter's shift count as last known (corrections included, never < 0)."""
        total = self.latest.get(self.output)
        baseline = self.baselines.get(self.output)
        counted = max(0, total - baseline) if total is not None and baseline is not None else 0
        return max(0, counted + self.corrections.get(self.output, 0))


class FinishedShift(BaseModel):
    """One finished shift of a line: its output count against its target."""

    model_config = ConfigDict(frozen=True)

    line: str
    shift: str = Field(description="The shift's name in the line's calendar.")
    start: dt.datetime
    end: dt.datetime
    count: int = Field(description="Units of the output counter, corrections included.")
    target: int = Field(description="Units planned for the whole shift.")
    corrections: int = Field(description="Sum of the manual corrections of the output counter.")
    complete: bool = Field(
        description=(
            "False when the server was not running at the shift's end: the count then stops at"
            " the last update the server saw (units made after it are missing)."
        )
    )


class AuditEntry(BaseModel):
    """One accepted write: who changed what, when, from where."""

    model_config = ConfigDict(frozen=True)

    id: int | None = Field(default=None, description="Set by the store, increasing.")
    at: dt.datetime
    endpoint: str = Field(description="Method and path template, e.g. POST /api/lines/{line}/...")
    line: str
    body: dict[str, Any] = Field(description="The request body as accepted.")
    by: str = Field(description="The `by` field of the body (who says they made the change).")
    client: str = Field(description="The client's address.")


@dataclass(frozen=True, slots=True)
class Changes:
    """What to write: per line its current shift (None: no shift runs), finished shifts."""

    current: Mapping[str, ShiftRecord | None] = field(default_factory=dict)
    finished: tuple[FinishedShift, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.current or self.finished)
