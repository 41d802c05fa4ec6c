"""The evaluator's inputs: what the server knows of each line and edge at one instant.

`signals_from_board` builds them from the line board (`server.state.LineBoard`) and the edges'
latest health samples (`server.edge_health.EdgeHealthBook.latest`). Tests and other callers
can build them directly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from server.crossings import Crossing
from server.snapshot import LineSnapshot
from server.state import LineBoard
from server.yields import YIELD_RULES
from taktline.livebus import EdgeHealth
from taktline.model.assets import Line


@dataclass(frozen=True, slots=True)
class StationYield:
    """Lifetime totals of the counters of a station's first-pass yield (`basis`)."""

    station: str
    basis: str
    passed: int
    """Sum of the rule's numerator counters (passed, good)."""
    tested: int
    """Sum of its denominator counters (tested, passed + failed, good + scrap)."""


@dataclass(frozen=True, slots=True)
class LineSignals:
    """One line now."""

    line: str
    shift_count: int = 0
    """Units of the output counter this shift, corrections included."""
    output_total: int | None = None
    """Lifetime total of the output counter (None: not heard of yet)."""
    last_unit_at: dt.datetime | None = None
    """When the output last counted a unit, if known."""
    updated_at: dt.datetime | None = None
    """When the line (a counter message, or an `online` status of its edge) was last heard."""
    offline: bool = False
    """Every edge serving the line says `offline`."""
    yields: tuple[StationYield, ...] = ()


@dataclass(frozen=True, slots=True)
class EdgeBacklog:
    """An edge's outbox from one health sample (`ts`): undelivered updates and their age."""

    edge_id: str
    ts: dt.datetime
    depth: int
    oldest_age_s: float
    lines: tuple[str, ...] = ()
    """The lines the edge serves."""


@dataclass(frozen=True, slots=True)
class SourceLink:
    """A data source of an edge (an OPC UA server, an MQTT broker) from its health sample."""

    edge_id: str
    source: str
    connected: bool
    lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Signals:
    """Everything one evaluation looks at. A line, edge or source left out is taken as gone:
    its firing alerts are resolved."""

    lines: tuple[LineSignals, ...] = ()
    edges: tuple[EdgeBacklog, ...] = ()
    sources: tuple[SourceLink, ...] = ()
    crossings: tuple[Crossing, ...] = ()
    """Milestone crossings made since the last evaluation."""


def signals_from_board(
    board: LineBoard,
    edge_health: Mapping[str, EdgeHealth],
    crossings: Sequence[Crossing] = (),
) -> Signals:
    """The signals of every line of the board (at the board's clock) and of every edge with a
    health sample; an edge's lines come from its status topic."""
    edge_lines = {status.edge_id: tuple(status.lines) for status in board.edges()}
    lines = {placed.line.id: placed.line for placed in board.plant.lines()}
    return Signals(
        lines=tuple(line_signals(snapshot, lines[snapshot.line]) for snapshot in board.snapshots()),
        edges=tuple(
            EdgeBacklog(
                edge_id=edge_id,
                ts=health.ts,
                depth=health.outbox.depth,
                oldest_age_s=health.outbox.oldest_age_s,
                lines=edge_lines.get(edge_id, ()),
            )
            for edge_id, health in edge_health.items()
        ),
        sources=tuple(
            SourceLink(edge_id, source.source, source.connected, edge_lines.get(edge_id, ()))
            for edge_id, health in edge_health.items()
            for source in health.sources
        ),
        crossings=tuple(crossings),
    )


def line_signals(snapshot: LineSnapshot, line: Line) -> LineSignals:
    """One line's signals from its snapshot (`last_unit_at`, not `stopped_since`, which is
    clamped to the current shift's start)."""
    totals = {f"{c.station}/{c.counter}": c for c in snapshot.stations}
    return LineSignals(
        line=snapshot.line,
        shift_count=snapshot.shift_count,
        output_total=snapshot.total,
        last_unit_at=snapshot.last_unit_at,
        updated_at=snapshot.updated_at,
        offline=snapshot.status == "offline",
        yields=tuple(_station_yields(line, {k: c.total for k, c in totals.items()})),
    )


def _station_yields(line: Line, totals: Mapping[str, int]) -> list[StationYield]:
    """Each station's yield totals, by the first rule of `YIELD_RULES` its counters allow,
    once every counter of the rule has been heard of."""
    found = []
    for station in line.stations:
        names = {counter.name for counter in station.counters}
        rule = next((r for r in YIELD_RULES if r.counters <= names), None)
        if rule is None or any(f"{station.id}/{n}" not in totals for n in rule.counters):
            continue
        found.append(
            StationYield(
                station=station.id,
                basis=f"{station.id}: {rule.basis}",
                passed=sum(totals[f"{station.id}/{n}"] for n in rule.numerator),
                tested=sum(totals[f"{station.id}/{n}"] for n in rule.denominator),
            )
        )
    return found
