"""What a benchmark hands back to the harness, and the options it runs with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Options:
    """Command-line options every benchmark honours."""

    quick: bool = False
    """Small sizes and short windows (for the test and a smoke run)."""
    sizes: tuple[int, ...] | None = None
    """Override the benchmark's sizes."""
    window_s: float | None = None
    """Override the measuring window."""


@dataclass(frozen=True, slots=True)
class Table:
    """A Markdown table: headers and rows of preformatted cells."""

    headers: list[str]
    rows: list[list[str]]


@dataclass(frozen=True, slots=True)
class BenchResult:
    """One benchmark's outcome: its parameters, one figures object per size, a table, notes."""

    name: str
    title: str
    parameters: dict[str, Any]
    figures: list[dict[str, Any]]
    table: Table
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The benchmark's entry in latest.json."""
        return {
            "title": self.title,
            "parameters": self.parameters,
            "figures": self.figures,
            "summary": self.summary,
            "notes": self.notes,
        }


Progress = Callable[[str], None]
"""Prints one progress line."""

Benchmark = Callable[[Options, Progress], Awaitable[BenchResult]]
"""A benchmark: `await benchmark(options, progress)`."""
