"""The outbox: group commit, cursors, pruning, back-pressure, restart and SIGKILL safety."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from edge.outbox import (
    SCHEMA_VERSION,
    Outbox,
    OutboxFullError,
    OutboxVersionError,
    update_row,
)
from taktline.model.paths import CounterPath
from taktline.records import CounterUpdate

REPO = Path(__file__).resolve().parents[2]
PATH = CounterPath("neustadt", "final", "fa1", "eol", "passed")
T0 = dt.datetime(2026, 11, 26, 9, 41, 2, 123456, tzinfo=dt.UTC)


def update(total: int, delta: int = 1, path: CounterPath = PATH) -> CounterUpdate:
    return CounterUpdate(path, T0 + dt.timedelta(seconds=total), total % 65536, total, delta)


async def test_append_read_advance_round_trip(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.db", ["influxdb", "live"], max_records=1000) as outbox:
        last = await outbox.append([update(1), update(2)], {str(PATH): '{"total":2}'})
        assert last == 2
        batch = await outbox.read_after("influxdb", 10)
        assert [s.seq for s in batch] == [1, 2]
        assert batch[0].update == update(1)
        await outbox.advance("influxdb", 2)
        assert (outbox.depth("influxdb"), outbox.depth("live")) == (0, 2)
        assert await outbox.read_after("influxdb", 10) == []
        assert [s.seq for s in await outbox.read_after("live", 1)] == [1]
        assert await outbox.oldest_pending_ns("live") is not None
        assert await outbox.oldest_pending_ns("influxdb") is None


async def test_rows_are_stored_as_the_updates_they_describe(tmp_path: Path) -> None:
    failed = CounterPath("neustadt", "final", "fa1", "eol", "failed")
    state = {"kind": "increment", "total": 2, "seen": ["m1"], "ts_ns": 7}
    async with Outbox(tmp_path / "o.db", ["live"], max_records=1000) as outbox:
        await outbox.append([update(1)], {})
        last = await outbox.append_rows(
            [update_row(update(2, path=failed)), update_row(update(3))],
            {str(failed): json.dumps(state)},
        )
        assert last == 3
        stored = await outbox.read_after("live", 10)
        assert await outbox.states() == {str(failed): state}
    assert [s.update for s in stored] == [update(1), update(2, path=failed), update(3)]


async def test_rows_every_sink_passed_are_pruned_and_seq_never_goes_back(tmp_path: Path) -> None:
    file = tmp_path / "o.db"
    async with Outbox(file, ["a", "b"], max_records=1000) as outbox:
        await outbox.append([update(n) for n in range(1, 6)], {})
        await outbox.advance("a", 5)
        await outbox.advance("b", 3)
        assert _count(file) == 2
        await outbox.advance("b", 5)
        assert _count(file) == 0
        assert await outbox.append([update(6)], {}) == 6


async def test_retain_delivered_keeps_recent_history(tmp_path: Path) -> None:
    file = tmp_path / "o.db"
    async with Outbox(file, ["live"], max_records=1000, retain_delivered=3) as outbox:
        await outbox.append([update(n) for n in range(1, 11)], {})
        await outbox.advance("live", 10)
        assert _count(file) == 3


async def test_reopen_restores_states_and_cursors(tmp_path: Path) -> None:
    file = tmp_path / "o.db"
    state = {"kind": "total", "total": 42, "raw": 42, "base": 42}
    async with Outbox(file, ["influxdb", "live"], max_records=1000) as outbox:
        await outbox.append([update(41), update(42)], {str(PATH): json.dumps(state)})
        await outbox.advance("live", 2)
    async with Outbox(file, ["influxdb", "live"], max_records=1000) as outbox:
        assert await outbox.states() == {str(PATH): state}
        assert (outbox.cursor("influxdb"), outbox.cursor("live"), outbox.last_seq) == (0, 2, 2)
        assert [s.update.total for s in await outbox.read_after("influxdb", 10)] == [41, 42]


async def test_a_new_sink_starts_at_the_oldest_row_and_a_removed_one_is_forgotten(
    tmp_path: Path,
) -> None:
    file = tmp_path / "o.db"
    async with Outbox(file, ["live"], max_records=1000, retain_delivered=2) as outbox:
        await outbox.append([update(n) for n in range(1, 6)], {})
        await outbox.advance("live", 5)
    async with Outbox(file, ["live", "influxdb"], max_records=1000) as outbox:
        assert [s.seq for s in await outbox.read_after("influxdb", 10)] == [4, 5]
        assert outbox.depth("influxdb") == 2
    async with Outbox(file, ["live"], max_records=1000) as outbox:
        assert outbox.sinks == ("live",)
    with sqlite3.connect(file) as db:
        assert db.execute("SELECT sink FROM cursors").fetchall() == [("live",)]


async def test_full_outbox_refuses_and_stores_nothing(tmp_path: Path) -> None:
    file = tmp_path / "o.db"
    async with Outbox(file, ["slow", "fast"], max_records=3) as outbox:
        await outbox.append([update(1), update(2)], {})
        await outbox.advance("fast", 2)  # the slow sink still holds both
        with pytest.raises(OutboxFullError):
            await outbox.append([update(3), update(4)], {str(PATH): '{"total":4}'})
        assert outbox.is_full() is False
        assert _count(file) == 2
        assert await outbox.states() == {}
        await outbox.append([update(3)], {})
        assert outbox.is_full() is True
        await outbox.advance("slow", 3)
        await outbox.append([update(4)], {})  # room again once the slow sink delivered


async def test_wait_appended_wakes_on_append(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.db", ["live"], max_records=1000) as outbox:
        waiter = asyncio.create_task(outbox.wait_appended(0))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        await outbox.append([update(1)], {})
        async with asyncio.timeout(5):
            await waiter


WRITER = """
import asyncio, datetime as dt, sys
from pathlib import Path
from edge.outbox import Outbox
from taktline.model.paths import CounterPath
from taktline.records import CounterUpdate

async def main() -> None:
    paths = [CounterPath("s", "a", "l", "st", f"c{i}") for i in range(3)]
    totals = [0, 0, 0]
    async with Outbox(Path(sys.argv[1]), ["live"], max_records=10_000_000) as outbox:
        for n in range(1_000_000):
            updates, states = [], {}
            for _ in range(5):
                i = (n + _) % 3
                totals[i] += 1
                ts = dt.datetime.now(dt.UTC)
                updates.append(CounterUpdate(paths[i], ts, totals[i], totals[i], 1))
                states[str(paths[i])] = f'{{"kind":"total","total":{totals[i]}}}'
            seq = await outbox.append(updates, states)
            print(seq, flush=True)

asyncio.run(main())
"""


async def test_sigkilled_writer_leaves_every_committed_update_with_its_state(
    tmp_path: Path,
) -> None:
    file = tmp_path / "o.db"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        str(file),
        stdout=asyncio.subprocess.PIPE,
        env=os.environ | {"PYTHONPATH": str(REPO)},
    )
    assert process.stdout is not None
    acknowledged = 0
    while acknowledged < 300:  # let it commit a few hundred batches, then pull the plug
        line = await process.stdout.readline()
        assert line, "the writer died on its own"
        acknowledged = int(line)
    process.send_signal(signal.SIGKILL)
    async for line in process.stdout:
        acknowledged = int(line)  # acknowledged before the kill landed
    assert await process.wait() == -signal.SIGKILL
    async with Outbox(file, ["live"], max_records=10_000_000) as outbox:
        assert outbox.last_seq >= acknowledged
        states = await outbox.states()
        rows = await outbox.read_after("live", 10_000_000)
    assert len(rows) == outbox.last_seq and outbox.last_seq % 5 == 0, "a torn batch"
    last_total: dict[str, int] = {}
    for row in rows:
        last_total[str(row.update.counter)] = row.update.total
    assert {path: state["total"] for path, state in states.items()} == last_total


PREVIOUS_LAYOUT = """
CREATE TABLE updates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    site TEXT NOT NULL, area TEXT NOT NULL, line TEXT NOT NULL, station TEXT NOT NULL,
    counter TEXT NOT NULL,
    ts_ns INTEGER NOT NULL, raw INTEGER, total INTEGER NOT NULL, delta INTEGER NOT NULL,
    quality TEXT NOT NULL, stored_ns INTEGER NOT NULL
);
CREATE TABLE counter_state (counter TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE cursors (sink TEXT PRIMARY KEY, seq INTEGER NOT NULL);
"""


def write_previous_layout(file: Path) -> None:
    """An outbox as the edge before layout 1 left it: 7 updates (1-4 pruned), states, cursors."""
    with sqlite3.connect(file) as db:
        db.executescript(PREVIOUS_LAYOUT)
        db.executemany(
            "INSERT INTO updates (site, area, line, station, counter, ts_ns, raw, total, delta,"
            " quality, stored_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    "neustadt",
                    "final",
                    "fa1",
                    "eol",
                    "passed",
                    1_700_000_000_000_000_000 + n,
                    n,
                    100 + n,
                    1,
                    "good",
                    1_700_000_000_000_000_000,
                )
                for n in range(1, 8)
            ],
        )
        db.execute("DELETE FROM updates WHERE seq <= 4")
        db.executemany(
            "INSERT INTO counter_state VALUES (?, ?)",
            [
                (str(PATH), '{"kind": "total", "total": 107, "raw": 7, "base": 0}'),
                (
                    "neustadt/final/fa1/eol/failed",
                    '{"kind": "increment", "total": 3, "seen": ["a"]}',
                ),
            ],
        )
        db.executemany("INSERT INTO cursors VALUES (?, ?)", [("live", 6), ("influxdb", 4)])


async def test_an_outbox_of_the_previous_layout_keeps_its_states_and_cursors(
    tmp_path: Path,
) -> None:
    file = tmp_path / "o.db"
    write_previous_layout(file)
    async with Outbox(file, ["influxdb", "live"], max_records=1000) as outbox:
        assert await outbox.states() == {
            str(PATH): {"kind": "total", "total": 107, "raw": 7, "base": 0},
            "neustadt/final/fa1/eol/failed": {"kind": "increment", "total": 3, "seen": ["a"]},
        }
        assert (outbox.cursor("influxdb"), outbox.cursor("live"), outbox.last_seq) == (4, 6, 7)
        assert [s.update.total for s in await outbox.read_after("influxdb", 10)] == [105, 106, 107]
        assert await outbox.append([update(8)], {str(PATH): '{"kind":"total","total":8}'}) == 8
        assert (await outbox.states())[str(PATH)] == {"kind": "total", "total": 8}
    with sqlite3.connect(file) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        (layout,) = db.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'counter_state'"
        ).fetchone()
        assert "counter INTEGER PRIMARY KEY" in layout
    async with Outbox(file, ["influxdb", "live"], max_records=1000) as outbox:  # migrated once
        assert (outbox.cursor("influxdb"), outbox.cursor("live"), outbox.last_seq) == (4, 6, 8)
        assert len(await outbox.states()) == 2


async def test_an_outbox_of_a_newer_layout_is_refused_and_left_alone(tmp_path: Path) -> None:
    file = tmp_path / "o.db"
    with sqlite3.connect(file) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(OutboxVersionError):
        async with Outbox(file, ["live"], max_records=1000):
            pass
    with sqlite3.connect(file) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION + 1,)
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == []


def _count(file: Path) -> int:
    with sqlite3.connect(file) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM updates").fetchone()
    return int(count)


async def test_a_layout_1_outbox_gains_dead_letters_and_keeps_its_rows(tmp_path: Path) -> None:
    file = tmp_path / "o.db"
    async with Outbox(file, ["influxdb"], max_records=1000) as outbox:
        await outbox.append([update(1), update(2)], {})
    with sqlite3.connect(file) as db:  # as an edge of layout 1 left it
        db.execute("DROP TABLE dead_letters")
        db.execute("PRAGMA user_version = 1")
    async with Outbox(file, ["influxdb"], max_records=1000) as outbox:
        batch = await outbox.read_after("influxdb", 10)
        assert [s.update.total for s in batch] == [1, 2]
        await outbox.park("influxdb", batch[0], "field type conflict")
        (letter,) = await outbox.dead_letters("influxdb")
    assert (letter.seq, letter.update, letter.reason) == (1, batch[0].update, "field type conflict")
    with sqlite3.connect(file) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


async def test_a_layout_2_outbox_gets_counter_ids_and_its_sequence_never_goes_back(
    tmp_path: Path,
) -> None:
    """Layout 2 named counters in five text columns; layout 3 by id. A file whose rows were
    all delivered and pruned keeps its sequence: the next update is 8, not 1."""
    pruned, kept = tmp_path / "pruned.db", tmp_path / "kept.db"
    for file in (pruned, kept):
        write_previous_layout(file)
        with sqlite3.connect(file) as db:
            db.execute(
                "CREATE TABLE dead_letters (sink TEXT NOT NULL, seq INTEGER NOT NULL,"
                " counter TEXT NOT NULL, ts_ns INTEGER NOT NULL, raw INTEGER, total INTEGER"
                " NOT NULL, delta INTEGER NOT NULL, quality TEXT NOT NULL, reason TEXT NOT NULL,"
                " parked_ns INTEGER NOT NULL, PRIMARY KEY (sink, seq))"
            )
            db.execute("PRAGMA user_version = 2")
    with sqlite3.connect(pruned) as db:
        db.execute("DELETE FROM updates")
        db.execute("UPDATE cursors SET seq = 7")
    async with Outbox(pruned, ["influxdb", "live"], max_records=1000) as outbox:
        assert outbox.last_seq == 7
        assert await outbox.append([update(8)], {}) == 8
        (stored,) = await outbox.read_after("influxdb", 10)
        assert (stored.seq, stored.update.counter) == (8, PATH)
    async with Outbox(kept, ["influxdb", "live"], max_records=1000) as outbox:
        stored_updates = await outbox.read_after("influxdb", 10)
        assert [(s.seq, s.update.total, s.update.counter) for s in stored_updates] == [
            (5, 105, PATH),
            (6, 106, PATH),
            (7, 107, PATH),
        ]
    with sqlite3.connect(kept) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (4,)
        columns = {row[1] for row in db.execute("PRAGMA table_info(updates)")}
        assert "site" not in columns and "counter" in columns
        assert db.execute("SELECT path FROM counters ORDER BY id").fetchall() == [
            (str(PATH),),
            ("neustadt/final/fa1/eol/failed",),  # it had a state, no stored update
        ]


LAYOUT_3 = """
CREATE TABLE counters (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);
CREATE TABLE updates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    counter INTEGER NOT NULL,
    ts_ns INTEGER NOT NULL, raw INTEGER, total INTEGER NOT NULL, delta INTEGER NOT NULL,
    quality TEXT NOT NULL, stored_ns INTEGER NOT NULL
);
CREATE TABLE counter_state (counter TEXT PRIMARY KEY, state TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE cursors (sink TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE gaps (
    first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, count INTEGER NOT NULL,
    dropped_ns INTEGER NOT NULL
);
CREATE TABLE dead_letters (
    sink TEXT NOT NULL, seq INTEGER NOT NULL, counter TEXT NOT NULL,
    ts_ns INTEGER NOT NULL, raw INTEGER, total INTEGER NOT NULL, delta INTEGER NOT NULL,
    quality TEXT NOT NULL, reason TEXT NOT NULL, parked_ns INTEGER NOT NULL,
    PRIMARY KEY (sink, seq)
);
PRAGMA user_version = 3;
"""


async def test_a_layout_3_outbox_keys_its_states_by_counter_id_and_keeps_everything(
    tmp_path: Path,
) -> None:
    """Layout 3 keyed counter states by path; layout 4 by the id of the `counters` table. A
    state whose counter has no stored update (its rows pruned) gets an id too."""
    file = tmp_path / "o.db"
    failed = "neustadt/final/fa1/eol/failed"
    with sqlite3.connect(file) as db:  # as an edge of layout 3 left it
        db.executescript(LAYOUT_3)
        db.execute("INSERT INTO counters (id, path) VALUES (1, ?)", (str(PATH),))
        db.executemany(
            "INSERT INTO updates (counter, ts_ns, raw, total, delta, quality, stored_ns)"
            " VALUES (1, ?, ?, ?, 1, 'good', 1700000000000000000)",
            [(1_700_000_000_000_000_000 + n, n, 100 + n) for n in range(1, 6)],
        )
        db.execute("DELETE FROM updates WHERE seq <= 2")
        db.executemany(
            "INSERT INTO counter_state VALUES (?, ?)",
            [(str(PATH), '{"kind":"total","total":105}'), (failed, '{"kind":"total","total":9}')],
        )
        db.executemany("INSERT INTO cursors VALUES (?, ?)", [("live", 4), ("influxdb", 2)])
    async with Outbox(file, ["influxdb", "live"], max_records=1000) as outbox:
        assert await outbox.states() == {
            str(PATH): {"kind": "total", "total": 105},
            failed: {"kind": "total", "total": 9},
        }
        assert (outbox.cursor("influxdb"), outbox.cursor("live"), outbox.last_seq) == (2, 4, 5)
        assert [s.update.total for s in await outbox.read_after("influxdb", 10)] == [103, 104, 105]
        assert await outbox.append([update(106)], {failed: '{"kind":"total","total":10}'}) == 6
        assert (await outbox.states())[failed] == {"kind": "total", "total": 10}
    with sqlite3.connect(file) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (4,)
        assert db.execute(
            "SELECT c.path, s.counter FROM counter_state AS s JOIN counters AS c"
            " ON c.id = s.counter ORDER BY s.counter"
        ).fetchall() == [(str(PATH), 1), (failed, 2)]
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        assert "counter_state_3" not in tables
    async with Outbox(file, ["influxdb", "live"], max_records=1000) as outbox:  # migrated once
        assert outbox.last_seq == 6
        assert len(await outbox.states()) == 2


async def test_a_sink_reads_the_same_updates_from_memory_as_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The newest updates are read from memory (at most 2 x TAIL_MOST); a sink behind them
    reads the file; a reopened outbox has only the file. All three give the same updates."""
    monkeypatch.setattr("edge.outbox.TAIL_MOST", 4)
    file = tmp_path / "o.db"
    other = CounterPath("neustadt", "final", "fa1", "eol", "failed")
    async with Outbox(file, ["live", "influxdb"], max_records=1000) as outbox:
        for n in range(1, 31, 3):
            batch = [update(n), update(n + 1, path=other), update(n + 2, delta=2)]
            await outbox.append(batch, {str(PATH): f'{{"total":{n + 2}}}'})
        await outbox.advance("live", 27)
        from_memory = await outbox.read_after("live", 10)  # within the newest 4 to 8
        behind = await outbox.read_after("influxdb", 100)  # before them: from the file
        assert [s.seq for s in from_memory] == [28, 29, 30]
        assert await outbox.read_from(28, 1) == from_memory[1:2]
    async with Outbox(file, ["live", "influxdb"], max_records=1000) as outbox:
        assert await outbox.read_after("live", 10) == from_memory
        assert await outbox.read_after("influxdb", 100) == behind
    assert [s.seq for s in behind] == list(range(1, 31))
    assert [s.update.total for s in behind] == list(range(1, 31))
    assert behind[27:] == from_memory


async def test_drop_oldest_makes_room_records_the_gap_and_keeps_the_states(
    tmp_path: Path,
) -> None:
    """`when_full: drop_oldest`: the oldest undelivered updates go, every cursor moves past
    them, the gap is recorded; the newest updates and the counter states are all kept."""
    file = tmp_path / "o.db"
    async with Outbox(
        file, ["influxdb", "live"], max_records=1000, when_full="drop_oldest"
    ) as outbox:
        await outbox.append([update(n) for n in range(1, 901)], {})
        await outbox.advance("live", 300)  # the live bus is ahead; InfluxDB is down
        state = {str(PATH): '{"kind":"total","total":1150}'}
        assert await outbox.append([update(n) for n in range(901, 1151)], state) == 1150
        assert (outbox.dropped, outbox.undelivered()) == (150, 1000)
        assert (outbox.cursor("influxdb"), outbox.cursor("live")) == (150, 300)
        assert [s.update.total for s in await outbox.read_after("influxdb", 2)] == [151, 152]
        ((first, last, count, _),) = await outbox.gaps()
        assert (first, last, count) == (1, 150, 150)  # the oldest InfluxDB had not delivered
        assert (await outbox.states())[str(PATH)] == {"kind": "total", "total": 1150}
    async with Outbox(file, ["influxdb", "live"], max_records=1000) as outbox:  # block
        with pytest.raises(OutboxFullError):
            await outbox.append([update(1151)], {})
        assert len(await outbox.gaps()) == 1
