"""Corrections with replicas sharing one state store (a real SQLite file or PostgreSQL): each
replica is a board fed live-bus messages, a store, a Persister and the write routes; the
corrections are added in the store and every replica adopts them."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from server import errors, writes
from server.auth import BearerGuard
from server.flusher import Persister
from server.persisted import AuditEntry, Changes, ShiftRecord
from server.state import LineBoard
from server.store import ShiftNotStored, StateStore
from taktline.livebus import counter_topic
from taktline.model import Plant
from tests.fixtures.postgres import PostgresService
from tests.server.conftest import AUTH, BERLIN, FA1, TOKEN, PinnedClock, counter_body, eventually

EARLY = dt.datetime(2026, 11, 25, 6, 0, tzinfo=BERLIN).astimezone(dt.UTC)
LATE_SHIFT = dt.datetime(2026, 11, 25, 14, 0, 30, tzinfo=BERLIN).astimezone(dt.UTC)


def correction(delta: int, by: str = "Ana") -> dict[str, Any]:
    return {"counter": "eol/passed", "delta": delta, "reason": "counted by hand", "by": by}


@dataclass
class Replica:
    """One server replica in this process: its own board, store connection and Persister."""

    board: LineBoard
    store: StateStore
    persister: Persister
    http: httpx.AsyncClient
    synced: list[str] = field(default_factory=list)
    """Lines the Persister reported as changed by stored corrections."""

    def feed(self, clock: PinnedClock, total: int, delta: int) -> None:
        self.board.handle(counter_topic(FA1), counter_body(total, delta, clock.now))

    def fa1(self) -> tuple[int, int]:
        snapshot = self.board.snapshot("fa1")
        assert snapshot is not None
        return snapshot.shift_count, snapshot.corrections


@asynccontextmanager
async def replica(location: Path | str, plant: Plant, clock: PinnedClock) -> AsyncIterator[Replica]:
    board = LineBoard(plant, stale_after_s=30, clock=clock)
    with StateStore(location) as store:
        board.restore(store.current())
        synced: list[str] = []
        persister = Persister(board, store, on_change=synced.extend)
        app = FastAPI()
        errors.install(app)
        app.include_router(writes.router(board, persister, BearerGuard(TOKEN), lambda _: None))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as http:
            yield Replica(board, store, persister, http, synced)


def record(start: dt.datetime, corrections: dict[str, int]) -> ShiftRecord:
    return ShiftRecord(
        line="fa1",
        shift="early",
        start=start,
        end=start + dt.timedelta(hours=8),
        target=435,
        output="eol/passed",
        baselines={"eol/passed": 100},
        latest={"eol/passed": 110},
        corrections=corrections,
    )


def audit_entry(delta: int) -> AuditEntry:
    return AuditEntry(
        at=EARLY,
        endpoint="POST /api/lines/{line}/corrections",
        line="fa1",
        body=correction(delta),
        by="Ana",
        client="127.0.0.1",
    )


def test_saves_keep_the_stored_corrections_of_the_same_shift_only(
    state_location: Path | str,
) -> None:
    later = EARLY + dt.timedelta(hours=8)
    with StateStore(state_location) as store:
        with pytest.raises(ShiftNotStored, match="not the one from"):
            store.correct("fa1", EARLY, "eol/passed", 2, audit_entry(2))  # no row yet
        store.save(Changes({"fa1": record(EARLY, {"eol/passed": 5})}))  # a new row: its own
        after, first = store.correct("fa1", EARLY, "eol/passed", 2, audit_entry(2))
        after_tested, second = store.correct("fa1", EARLY, "eol/tested", -1, audit_entry(-1))
        store.save(Changes({"fa1": record(EARLY, {})}))  # a replica that never heard of them
        same_shift = store.current()["fa1"]
        with pytest.raises(ShiftNotStored, match="not the one from"):
            store.correct("fa1", later, "eol/passed", 1, audit_entry(1))
        store.save(Changes({"fa1": record(later, {})}))  # the next shift
        next_shift = store.current()["fa1"]
        audit = store.audit(10)
    assert after == {"eol/passed": 7}
    assert after_tested == {"eol/passed": 7, "eol/tested": -1}
    assert same_shift.corrections == {"eol/passed": 7, "eol/tested": -1}
    assert same_shift.latest == {"eol/passed": 110}  # the rest of the row is the save's
    assert (next_shift.start, next_shift.corrections) == (later, {})
    assert [entry.id for entry in audit] == [second, first]  # none for the refused ones


async def test_a_correction_on_one_replica_survives_the_others_saves_and_shows_there(
    state_location: Path | str, plant: Plant, clock: PinnedClock
) -> None:
    async with (
        replica(state_location, plant, clock) as a,
        replica(state_location, plant, clock) as b,
    ):
        for each in (a, b):
            each.feed(clock, 16_250_310, 10)
            await each.persister.sync()
        posted = await a.http.post("/api/lines/fa1/corrections", json=correction(3), headers=AUTH)
        clock.advance(seconds=30)
        b.feed(clock, 16_250_311, 1)  # B saves its own view of the shift, without the correction
        await b.persister.flush()
        stored = a.store.current()["fa1"]
        before_sync = b.fa1()
        await b.persister.sync()
        after_sync, synced = b.fa1(), list(b.synced)
        await b.persister.sync()  # nothing new: no push
        clock.now = LATE_SHIFT
        await b.persister.sync()
        history = b.store.history("fa1", 5)
        late = b.store.current()["fa1"]
        late_counts = b.fa1()
    assert posted.status_code == 201, posted.text
    assert (posted.json()["counter_corrections"], posted.json()["shift_count"]) == (3, 13)
    assert stored.corrections == {"eol/passed": 3}
    assert stored.latest == {"eol/passed": 16_250_311}  # B's save went through
    assert before_sync == (11, 0)
    assert after_sync == (14, 3)
    assert synced == ["fa1"] and b.synced == ["fa1"]
    assert [(s.shift, s.count, s.corrections) for s in history] == [("early", 14, 3)]
    assert (late.shift, late.corrections, late_counts) == ("late", {}, (0, 0))


async def test_corrections_posted_on_two_replicas_at_once_both_count(
    postgres: PostgresService, plant: Plant, clock: PinnedClock
) -> None:
    url = postgres.new_database()
    async with replica(url, plant, clock) as a, replica(url, plant, clock) as b:
        for each in (a, b):
            each.feed(clock, 16_250_310, 10)
            await each.persister.sync()
        with postgres.connect(url) as holder, postgres.connect(url) as observer:
            # hold the row, so that both corrections wait for it and then run one after the other
            with holder.transaction():
                holder.execute("SELECT 1 FROM current_shift WHERE line = 'fa1' FOR UPDATE")
                posts = [
                    asyncio.create_task(
                        each.http.post(
                            "/api/lines/fa1/corrections", json=correction(delta), headers=AUTH
                        )
                    )
                    for each, delta in ((a, 1), (b, 2))
                ]

                async def both_waiting() -> bool:
                    row = observer.execute(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    ).fetchone()
                    return row is not None and row[0] == 2

                await eventually(both_waiting)
            responses = await asyncio.gather(*posts)
        stored = a.store.current()["fa1"].corrections
        audit = a.store.audit(10)
        for each in (a, b):
            await each.persister.sync()
    assert [r.status_code for r in responses] == [201, 201]
    assert sorted(r.json()["counter_corrections"] for r in responses) in ([1, 3], [2, 3])
    assert stored == {"eol/passed": 3}
    assert len(audit) == 2
    assert (a.fa1(), b.fa1()) == ((13, 3), (13, 3))


async def test_a_correction_the_store_refuses_or_cannot_keep_changes_nothing_in_memory(
    state_location: Path | str, plant: Plant, clock: PinnedClock
) -> None:
    async with replica(state_location, plant, clock) as a:
        a.feed(clock, 16_250_310, 10)
        first = await a.http.post("/api/lines/fa1/corrections", json=correction(3), headers=AUTH)
        # another replica, its clock ahead, already stored the next shift
        a.store.save(Changes({"fa1": record(EARLY + dt.timedelta(hours=8), {})}))
        other_shift = await a.http.post(
            "/api/lines/fa1/corrections", json=correction(2), headers=AUTH
        )
        after_refusal = a.fa1()
        a.store.close()
        failed = await a.http.post("/api/lines/fa1/corrections", json=correction(2), headers=AUTH)
        after_failure = a.fa1()
    assert first.status_code == 201, first.text
    assert other_shift.status_code == 409
    assert other_shift.json()["error"] == "no_shift"
    assert "stored shift of line fa1" in other_shift.json()["message"]
    assert after_refusal == (13, 3)
    assert failed.status_code == 503
    assert failed.json()["error"] == "store_unavailable"
    assert after_failure == (13, 3)


async def test_a_new_shift_starts_with_no_corrections_on_every_replica(
    state_location: Path | str, plant: Plant, clock: PinnedClock
) -> None:
    async with (
        replica(state_location, plant, clock) as a,
        replica(state_location, plant, clock) as b,
    ):
        for each in (a, b):
            each.feed(clock, 16_250_310, 10)
            await each.persister.sync()
        early = await a.http.post("/api/lines/fa1/corrections", json=correction(4), headers=AUTH)
        await b.persister.sync()
        early_on_b = b.fa1()
        clock.now = LATE_SHIFT
        await a.persister.sync()  # A stores the late shift first
        await b.persister.sync()
        late = a.store.current()["fa1"]
        late_counts = (a.fa1(), b.fa1())
        posted = await b.http.post("/api/lines/fa1/corrections", json=correction(1), headers=AUTH)
        await a.persister.sync()
        history = a.store.history("fa1", 5)
    assert early.status_code == 201 and posted.status_code == 201
    assert early_on_b == (14, 4)
    assert (late.shift, late.corrections) == ("late", {})
    assert late_counts == ((0, 0), (0, 0))
    assert (a.fa1(), b.fa1()) == ((1, 1), (1, 1))
    assert [(s.shift, s.count, s.corrections) for s in history] == [("early", 14, 4)]


def test_a_board_adopts_stored_corrections_of_its_running_shift_only(
    plant: Plant, clock: PinnedClock
) -> None:
    board = LineBoard(plant, stale_after_s=30, clock=clock)
    board.handle(counter_topic(FA1), counter_body(16_250_310, 10, clock.now))
    yesterday = EARLY - dt.timedelta(days=1)
    assert not board.adopt_corrections("fa1", yesterday, {"eol/passed": 5})
    assert not board.adopt_corrections("fa9", EARLY, {"eol/passed": 5})
    assert board.adopt_corrections("fa1", EARLY, {"eol/passed": 5, "eol/gone": 1})
    assert not board.adopt_corrections("fa1", EARLY, {"eol/passed": 5})  # unchanged
    snapshot = board.snapshot("fa1")
    assert snapshot is not None and (snapshot.shift_count, snapshot.corrections) == (15, 5)
