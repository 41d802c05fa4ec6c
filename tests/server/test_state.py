"""Line state from live-bus messages: baselines, targets, rate, status, bad messages."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from server.state import LineBoard, Refused
from taktline.livebus import counter_topic, edge_status_topic
from taktline.model import CounterPath, Plant
from tests.server.conftest import (
    BERLIN,
    FA1,
    FA2,
    PAINT1,
    PinnedClock,
    counter_body,
    status_body,
)


@pytest.fixture
def board(plant: Plant, clock: PinnedClock) -> LineBoard:
    return LineBoard(plant, stale_after_s=30, clock=clock)


def feed(board: LineBoard, clock: PinnedClock, total: int, delta: int, ago_s: float = 0) -> None:
    ts = clock.now - dt.timedelta(seconds=ago_s)
    board.handle(counter_topic(FA1), counter_body(total, delta, ts))


def correct(board: LineBoard, name: str, delta: int) -> None:
    """A correction of fa1 as the store adds it: checked, then the stored sum adopted."""
    path, window = board.check_correction("fa1", name, delta)
    corrections = board.counter_counts(path)[1] + delta
    assert board.adopt_corrections("fa1", window.start, {name: corrections})


def fa1(board: LineBoard) -> dict[str, object]:
    snapshot = board.snapshot("fa1")
    assert snapshot is not None
    return snapshot.model_dump()


def test_first_message_inside_the_shift_counts_its_delta(
    board: LineBoard, clock: PinnedClock
) -> None:
    feed(board, clock, 16_250_300, 1)
    assert fa1(board)["shift_count"] == 1
    clock.advance(seconds=60)
    feed(board, clock, 16_250_302, 2)
    state = fa1(board)
    assert state["shift_count"] == 3
    assert state["total"] == 16_250_302
    assert state["shift"] == "early"
    assert state["status"] == "running"


def test_retained_message_from_before_the_shift_sets_the_baseline(
    board: LineBoard, clock: PinnedClock
) -> None:
    before_shift = dt.datetime(2026, 11, 25, 5, 59, tzinfo=BERLIN)
    board.handle(counter_topic(FA1), counter_body(16_250_000, 1, before_shift))
    assert fa1(board)["shift_count"] == 0
    feed(board, clock, 16_250_004, 4)
    assert fa1(board)["shift_count"] == 4


def test_shift_change_rebases_on_the_latest_total(board: LineBoard, clock: PinnedClock) -> None:
    feed(board, clock, 16_250_100, 1)
    feed(board, clock, 16_250_150, 50)
    assert fa1(board)["shift_count"] == 51
    clock.now = dt.datetime(2026, 11, 25, 14, 0, 30, tzinfo=BERLIN).astimezone(dt.UTC)
    state = fa1(board)
    assert (state["shift"], state["shift_count"], state["total"]) == ("late", 0, 16_250_150)
    feed(board, clock, 16_250_153, 3)
    assert fa1(board)["shift_count"] == 3


def test_targets_follow_takt_and_breaks(board: LineBoard) -> None:
    state = fa1(board)  # 10:00: 4 h into the early shift, a 15 min break behind it
    assert state["target"] == 435  # (8 h - 45 min) / 60 s
    assert state["target_so_far"] == 225.0  # (4 h - 15 min) / 60 s
    paint = board.snapshot("paint1")
    assert paint is not None and paint.target == 420


def test_rate_is_units_per_hour_over_what_was_seen(board: LineBoard, clock: PinnedClock) -> None:
    total = 16_250_000
    for _ in range(10):
        clock.advance(seconds=30)
        total += 2
        feed(board, clock, total, 2)
    assert fa1(board)["rate_per_hour"] == 240.0  # 20 units in 5 minutes
    clock.advance(minutes=20)
    assert fa1(board)["rate_per_hour"] == 0.0


def test_status_no_data_offline_and_back(board: LineBoard, clock: PinnedClock) -> None:
    assert fa1(board)["status"] == "no data"
    feed(board, clock, 16_250_001, 1)
    assert fa1(board)["status"] == "running"
    clock.advance(seconds=31)
    assert fa1(board)["status"] == "no data"
    offline = status_body("edge-final", "offline", ["fa1", "fa2"], clock.now)
    assert board.handle(edge_status_topic("edge-final"), offline) == {"fa1", "fa2"}
    assert fa1(board)["status"] == "offline"
    assert board.snapshot("paint1").status == "no data"  # type: ignore[union-attr]
    online = status_body("edge-final", "online", ["fa1", "fa2"], clock.now)
    board.handle(edge_status_topic("edge-final"), online)
    assert fa1(board)["status"] == "running"


def test_day_off_has_no_shift(board: LineBoard, clock: PinnedClock) -> None:
    clock.now = dt.datetime(2026, 12, 25, 10, 0, tzinfo=BERLIN).astimezone(dt.UTC)
    feed(board, clock, 16_260_000, 1)
    state = fa1(board)
    assert state["status"] == "no shift"
    assert (state["shift"], state["target"], state["target_so_far"]) == (None, None, None)
    assert state["shift_count"] == 0
    assert state["total"] == 16_260_000


def test_bad_messages_are_counted_and_logged_once_per_topic(
    board: LineBoard, clock: PinnedClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="server.state")
    topic = counter_topic(FA2)
    assert board.handle(topic, b"{not json") == set()
    assert board.handle(topic, b'{"total": "many"}') == set()
    assert board.handle("taktline/v1/neustadt/final/fa9/eol/passed", b"{}") == set()
    assert board.handle(counter_topic(PAINT1), b"") == set()
    assert board.handle(topic, counter_body(13_749_310, 1, clock.now)) == {"fa2"}
    assert dict(board.rejected) == {"malformed": 2, "unknown_counter": 1, "empty": 1}
    assert board.accepted == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert board.snapshot("fa2").total == 13_749_310  # type: ignore[union-attr]


def test_station_counters_are_listed(board: LineBoard, clock: PinnedClock) -> None:
    tested = FA1.__class__("neustadt", "final", "fa1", "eol", "tested")
    board.handle(counter_topic(tested), counter_body(16_312_050, 1, clock.now))
    feed(board, clock, 16_250_220, 1)
    stations = fa1(board)["stations"]
    assert [(s["station"], s["counter"], s["total"]) for s in stations] == [  # type: ignore[attr-defined]
        ("eol", "passed", 16_250_220),
        ("eol", "tested", 16_312_050),
    ]


def test_fed_line_without_units_for_three_takts_is_stopped(
    board: LineBoard, clock: PinnedClock
) -> None:
    """fa1 runs at a 60 s takt; its edge keeps saying `online` while no vehicle comes."""
    feed(board, clock, 16_250_001, 1)
    last_unit = clock.now

    def heartbeat() -> None:
        body = status_body("edge-final", "online", ["fa1"], clock.now)
        board.handle(edge_status_topic("edge-final"), body)

    for _ in range(17):  # 170 s of heartbeats: under three takts
        clock.advance(seconds=10)
        heartbeat()
    assert fa1(board)["status"] == "running"
    clock.advance(seconds=10)
    heartbeat()
    state = fa1(board)
    assert (state["status"], state["stopped_since"]) == ("stopped", last_unit)
    feed(board, clock, 16_250_002, 1)
    assert (fa1(board)["status"], fa1(board)["stopped_since"]) == ("running", None)


def test_a_timestamp_without_time_zone_is_malformed(board: LineBoard) -> None:
    body = b'{"total": 5, "delta": 1, "ts": "2026-11-25T10:00:00"}'
    assert board.handle(counter_topic(FA1), body) == set()
    assert board.rejected["malformed"] == 1


TESTED = CounterPath("neustadt", "final", "fa1", "eol", "tested")


def test_ahead_by_and_takt_planned_and_actual(board: LineBoard, clock: PinnedClock) -> None:
    state = fa1(board)
    assert (state["ahead_by"], state["takt_planned_s"], state["takt_actual_s"]) == (
        -225,
        60.0,
        None,
    )
    for step in range(1, 11):
        clock.advance(seconds=30)
        feed(board, clock, 16_250_300 + 2 * step, 2)
    state = fa1(board)  # 20 units in 5 min: 240/h, 15 s per unit
    assert state["shift_count"] == 20
    assert state["target_so_far"] == 230.0
    assert (state["ahead_by"], state["takt_actual_s"]) == (20 - 230, 15.0)
    paint = board.snapshot("paint1")
    assert paint is not None
    assert paint.takt_planned_s == round((8 * 3600 - 45 * 60) / 420, 1)
    clock.now = dt.datetime(2026, 12, 25, 10, 0, tzinfo=BERLIN).astimezone(dt.UTC)
    state = fa1(board)
    assert (state["ahead_by"], state["takt_planned_s"]) == (None, 60.0)


def test_first_pass_yield_from_tested_and_passed_this_shift(
    board: LineBoard, clock: PinnedClock
) -> None:
    assert (fa1(board)["yield_percent"], fa1(board)["yield_basis"]) == (None, "eol: passed/tested")
    before = clock.now - dt.timedelta(hours=5)  # last night: sets the baselines
    board.handle(counter_topic(TESTED), counter_body(16_312_000, 1, before))
    board.handle(counter_topic(FA1), counter_body(16_250_000, 1, before))
    board.handle(counter_topic(TESTED), counter_body(16_312_040, 40, clock.now))
    board.handle(counter_topic(FA1), counter_body(16_250_036, 36, clock.now))
    state = fa1(board)
    assert (state["yield_percent"], state["shift_count"]) == (90.0, 36)
    stations = {s["counter"]: s for s in state["stations"]}  # type: ignore[attr-defined]
    assert stations["tested"]["shift_count"] == 40
    paint = board.snapshot("paint1")
    assert paint is not None and (paint.yield_percent, paint.yield_basis) == (None, None)


def test_next_milestone_sums_its_scope_and_gives_an_eta(
    board: LineBoard, clock: PinnedClock
) -> None:
    assert fa1(board)["next_milestone"] is None  # nothing in scope seen yet
    before = clock.now - dt.timedelta(hours=5)
    board.handle(counter_topic(FA2), counter_body(13_749_300, 1, before))
    feed(board, clock, 16_250_200, 0)
    state = fa1(board)
    milestone = state["next_milestone"]
    assert isinstance(milestone, dict)
    assert (milestone["id"], milestone["value"], milestone["total"]) == (
        "site-30m",
        30_000_000,
        29_999_500,
    )
    assert (milestone["remaining"], state["next_milestone_eta"]) == (500, None)  # rate 0
    total = 16_250_200
    for _ in range(10):
        clock.advance(seconds=30)
        total += 2
        feed(board, clock, total, 2)
    state = fa1(board)  # 240/h, 480 to go: 2 hours
    assert state["next_milestone"]["remaining"] == 480  # type: ignore[index]
    assert state["next_milestone_eta"] == (clock.now + dt.timedelta(hours=2)).replace(microsecond=0)
    feed(board, clock, 16_250_800, 580)  # past 30,000,000: the next step is 31,000,000
    state = fa1(board)
    assert state["next_milestone"]["id"] == "site-every-million"  # type: ignore[index]
    assert state["next_milestone"]["value"] == 31_000_000  # type: ignore[index]
    paint = board.snapshot("paint1")
    assert paint is not None and paint.next_milestone is None  # counts `produced`, not `passed`


def test_corrections_change_the_shift_count_not_the_total(
    board: LineBoard, clock: PinnedClock
) -> None:
    feed(board, clock, 16_250_300, 3)
    correct(board, "eol/passed", 5)
    correct(board, "eol/passed", -2)
    state = fa1(board)
    assert (state["shift_count"], state["corrections"], state["total"]) == (6, 3, 16_250_300)
    with pytest.raises(Refused) as unknown:
        correct(board, "eol/painted", 1)
    assert unknown.value.code == "unknown_counter"
    with pytest.raises(Refused) as negative:
        correct(board, "eol/passed", -7)
    assert negative.value.code == "negative_count"
    assert fa1(board)["shift_count"] == 6
    clock.now = dt.datetime(2026, 11, 25, 14, 0, 30, tzinfo=BERLIN).astimezone(dt.UTC)
    assert (fa1(board)["shift_count"], fa1(board)["corrections"]) == (0, 0)
    clock.now = dt.datetime(2026, 12, 25, 10, 0, tzinfo=BERLIN).astimezone(dt.UTC)
    with pytest.raises(Refused) as no_shift:
        correct(board, "eol/passed", 1)
    assert no_shift.value.code == "no_shift"


def test_changes_carry_baselines_and_finished_shifts(board: LineBoard, clock: PinnedClock) -> None:
    feed(board, clock, 16_250_300, 3)
    correct(board, "eol/passed", 2)
    changes = board.take_changes()
    record = changes.current["fa1"]
    assert record is not None
    assert (record.shift, record.target, record.output) == ("early", 435, "eol/passed")
    assert (record.baselines, record.latest, record.corrections) == (
        {"eol/passed": 16_250_297},
        {"eol/passed": 16_250_300},
        {"eol/passed": 2},
    )
    assert changes.finished == ()
    assert not board.take_changes().current  # nothing changed since
    clock.now = dt.datetime(2026, 11, 25, 14, 0, 30, tzinfo=BERLIN).astimezone(dt.UTC)
    changes = board.take_changes()
    early = [shift for shift in changes.finished if shift.line == "fa1"]
    assert len(early) == 1
    assert (early[0].shift, early[0].count, early[0].target) == ("early", 5, 435)
    assert (early[0].corrections, early[0].complete) == (2, True)
    late = changes.current["fa1"]
    assert late is not None and late.shift == "late" and late.baselines == record.latest
    board.give_back(changes)
    assert board.take_changes().finished == changes.finished


def test_restored_baselines_keep_the_shift_count_after_a_restart(
    plant: Plant, board: LineBoard, clock: PinnedClock
) -> None:
    feed(board, clock, 16_250_300, 1, ago_s=600)
    feed(board, clock, 16_250_320, 20)
    correct(board, "eol/passed", 1)
    records = {k: v for k, v in board.take_changes().current.items() if v is not None}
    clock.advance(minutes=5)
    restarted = LineBoard(plant, stale_after_s=30, clock=clock)
    restarted.restore(records)
    # the broker replays only the latest retained message
    restarted.handle(counter_topic(FA1), counter_body(16_250_325, 5, clock.now))
    state = restarted.snapshot("fa1")
    assert state is not None and (state.shift_count, state.corrections) == (27, 1)


def test_a_stored_shift_that_ended_while_the_server_was_down_is_finished_incomplete(
    plant: Plant, board: LineBoard, clock: PinnedClock
) -> None:
    feed(board, clock, 16_250_300, 1, ago_s=600)
    feed(board, clock, 16_250_320, 20)
    records = {k: v for k, v in board.take_changes().current.items() if v is not None}
    clock.now = dt.datetime(2026, 11, 25, 15, 0, tzinfo=BERLIN).astimezone(dt.UTC)
    restarted = LineBoard(plant, stale_after_s=30, clock=clock)
    restarted.restore(records)
    finished = [s for s in restarted.take_changes().finished if s.line == "fa1"]
    assert [(s.shift, s.count, s.complete) for s in finished] == [("early", 21, False)]
    restarted.handle(counter_topic(FA1), counter_body(16_250_330, 10, clock.now))
    assert restarted.snapshot("fa1").shift_count == 10  # type: ignore[union-attr]


def test_an_acknowledgement_lasts_as_long_as_the_stop(board: LineBoard, clock: PinnedClock) -> None:
    feed(board, clock, 16_250_001, 1)
    with pytest.raises(Refused) as running:
        board.acknowledge("fa1", "Ana")
    assert running.value.code == "not_stopped"
    clock.advance(minutes=4)
    board.handle(
        edge_status_topic("edge-final"), status_body("edge-final", "online", ["fa1"], clock.now)
    )
    assert fa1(board)["status"] == "stopped"
    ack, previous = board.acknowledge("fa1", "Ana")
    assert previous is None and ack.at == clock.now
    state = fa1(board)
    assert (state["acknowledged_by"], state["acknowledged_at"]) == ("Ana", clock.now)
    feed(board, clock, 16_250_002, 1)
    state = fa1(board)
    assert (state["status"], state["acknowledged_by"], state["acknowledged_at"]) == (
        "running",
        None,
        None,
    )
