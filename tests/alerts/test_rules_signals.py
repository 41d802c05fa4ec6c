"""Signals from the real line board and edge health samples, evaluated on a pinned clock."""

from __future__ import annotations

import dataclasses
import datetime as dt

from server.alerts.rules import AlertEvaluator
from server.alerts.signals import (
    EdgeBacklog,
    LineSignals,
    SourceLink,
    StationYield,
    signals_from_board,
)
from server.alerts.transitions import AlertKey
from server.state import LineBoard
from taktline.config import load_plant
from taktline.livebus import (
    EdgeHealth,
    OutboxHealthBody,
    SourceHealthBody,
    counter_topic,
    edge_status_topic,
)
from tests.conftest import EXAMPLE_PLANT
from tests.server.conftest import FA1, WEDNESDAY_10, PinnedClock, counter_body, status_body

FA1_TESTED = dataclasses.replace(FA1, counter="tested")


def health(ts: dt.datetime, depth: int, connected: bool) -> EdgeHealth:
    return EdgeHealth(
        edge_id="edge-fa1",
        ts=ts,
        sources=[
            SourceHealthBody(
                source="eol-fa1",
                connected=connected,
                last_data_at=ts,
                reconnects=0,
                readings=12,
                rejected=0,
            )
        ],
        outbox=OutboxHealthBody(
            depth=depth, oldest_age_s=42.0, dropped=0, max_records=100_000, full=False
        ),
    )


def test_the_board_and_edge_health_become_signals() -> None:
    clock = PinnedClock(WEDNESDAY_10)
    board = LineBoard(load_plant(EXAMPLE_PLANT), stale_after_s=30, clock=clock)
    ts = clock.now
    board.handle(counter_topic(FA1_TESTED), counter_body(16_312_103, 3, ts))
    board.handle(counter_topic(FA1), counter_body(16_250_300, 2, ts))
    board.handle(edge_status_topic("edge-fa1"), status_body("edge-fa1", "online", ["fa1"], ts))

    signals = signals_from_board(board, {"edge-fa1": health(ts, 1200, connected=False)})

    fa1 = next(line for line in signals.lines if line.line == "fa1")
    assert fa1 == LineSignals(
        line="fa1",
        shift_count=2,
        output_total=16_250_300,
        last_unit_at=ts,
        updated_at=ts,
        offline=False,
        yields=(StationYield("eol", "eol: passed/tested", passed=16_250_300, tested=16_312_103),),
    )
    assert [line.line for line in signals.lines] == ["fa1", "fa2", "paint1"]
    assert signals.edges == (EdgeBacklog("edge-fa1", ts, 1200, 42.0, ("fa1",)),)
    assert signals.sources == (SourceLink("edge-fa1", "eol-fa1", False, ("fa1",)),)


def test_a_line_that_stops_on_the_board_raises_one_stop_alert() -> None:
    plant = load_plant(EXAMPLE_PLANT)
    clock = PinnedClock(WEDNESDAY_10)
    board = LineBoard(plant, stale_after_s=30, clock=clock)
    evaluator = AlertEvaluator(plant)
    board.handle(counter_topic(FA1), counter_body(16_250_300, 1, clock.now))
    fired = []
    for _ in range(24):  # 6 minutes; the edge's heartbeat every 15 s keeps the line fresh
        status = status_body("edge-fa1", "online", ["fa1"], clock.now)
        board.handle(edge_status_topic("edge-fa1"), status)
        signals = signals_from_board(board, {"edge-fa1": health(clock.now, 0, connected=True)})
        fired += [
            (clock.now, t.message)
            for t in evaluator.evaluate(board.now(), signals)
            if t.key.scope == "line/fa1"
        ]
        clock.advance(seconds=15)
    assert fired == [
        (
            WEDNESDAY_10.astimezone(dt.UTC) + dt.timedelta(minutes=5),
            ("Final assembly line 1 stopped: no unit for 5 min (takt 60 s)"),
        )
    ]


def test_the_last_unit_time_comes_from_the_board_not_from_the_latest_message() -> None:
    clock = PinnedClock(WEDNESDAY_10)
    board = LineBoard(load_plant(EXAMPLE_PLANT), stale_after_s=30, clock=clock)
    unit_at = clock.now
    board.handle(counter_topic(FA1), counter_body(16_250_300, 1, unit_at))
    clock.advance(minutes=2)
    board.handle(counter_topic(FA1), counter_body(16_250_300, 0, clock.now))  # no new unit

    fa1 = next(line for line in signals_from_board(board, {}).lines if line.line == "fa1")

    assert fa1.last_unit_at == unit_at
    assert fa1.updated_at == clock.now


def test_a_restored_firing_alert_is_not_raised_again_and_resolves_when_the_line_runs() -> None:
    plant = load_plant(EXAMPLE_PLANT)
    clock = PinnedClock(WEDNESDAY_10)
    board = LineBoard(plant, stale_after_s=30, clock=clock)
    board.handle(counter_topic(FA1), counter_body(16_250_300, 1, clock.now))
    clock.advance(minutes=10)
    evaluator = AlertEvaluator(plant)  # a new process: the stop was raised by the last one
    key = AlertKey("line_stopped", "line/fa1")
    evaluator.restore([(key, "critical", ("fa1",), WEDNESDAY_10.astimezone(dt.UTC))])
    seen: list[tuple[str, dt.datetime]] = []
    total = 16_250_300
    for minute in range(10):  # stopped for 3 more minutes, then a unit a minute
        if minute >= 3:
            total += 1
            board.handle(counter_topic(FA1), counter_body(total, 1, clock.now))
        board.handle(
            edge_status_topic("edge-fa1"), status_body("edge-fa1", "online", ["fa1"], clock.now)
        )
        signals = signals_from_board(board, {})
        seen += [
            (t.kind, clock.now) for t in evaluator.evaluate(board.now(), signals) if t.key == key
        ]
        clock.advance(minutes=1)
    start = WEDNESDAY_10.astimezone(dt.UTC) + dt.timedelta(minutes=10)
    assert seen == [("resolved", start + dt.timedelta(minutes=6))]  # 3 takts of running
