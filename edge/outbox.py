"""The durable outbox: counter updates and counter states in SQLite, one cursor per sink, and
the dead letters (updates a sink rejected for good, with the reason).

SQLite runs in WAL mode with `synchronous=FULL`: once `append` returns, the batch and the counter
states it produced survive a crash or power loss, together or not at all (one transaction). All
SQLite calls run on one dedicated worker thread that owns the connection.

`seq` is AUTOINCREMENT, so it never goes back even when every row has been delivered and pruned.
Each sink reads the rows after its cursor and advances it once they are delivered. Rows every
sink has passed are pruned, except the newest `retain_delivered` (history for an edge without
InfluxDB). `max_records` bounds the rows some sink has not passed. When an append would exceed
it, `when_full` decides: `block` (the default) raises `OutboxFullError` and stores nothing;
`drop_oldest` deletes the oldest undelivered rows, moves the cursors past them and records the
gap in the `gaps` table, with a warning. Nothing is ever dropped silently.

A batch's updates come as `UpdateRow` tuples (`append_rows`: the committer builds them without a
datetime or record per update) or as CounterUpdates (`append`). Counter states are JSON texts
(made by the counters, `CounterLogic.state_text`) keyed by the counter's id (the `counters`
table names it), written with an upsert, only for the counters a batch changed. Rows go in
50 per statement. The newest committed updates are also kept in memory (`TAIL_MOST`): a sink
that keeps up reads them from there, one further behind from SQLite. The file's layout version
is `PRAGMA user_version` (SCHEMA_VERSION); opening an older file migrates it in one transaction,
keeping its updates, counter states and cursors, and a file of a newer version is refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple, Self, TypeVar

from edge.clock import from_ns, now_ns, to_ns
from taktline.model.paths import CounterPath
from taktline.records import CounterUpdate, Quality

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMA_VERSION = 4
"""0: counter_state was a rowid table (replaced row by row); 1: WITHOUT ROWID, upserted;
2: dead_letters added; 3: updates name their counter by an id of the `counters` table instead
of five text columns (about 1.5 µs less per row between insert and read); 4: so do the counter
states (a rowid table keyed by that id: a third less per upsert than by path)."""
SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS updates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    counter INTEGER NOT NULL,
    ts_ns INTEGER NOT NULL, raw INTEGER, total INTEGER NOT NULL, delta INTEGER NOT NULL,
    quality TEXT NOT NULL, stored_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counter_state (counter INTEGER PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (sink TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS gaps (
    first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, count INTEGER NOT NULL,
    dropped_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    sink TEXT NOT NULL, seq INTEGER NOT NULL, counter TEXT NOT NULL,
    ts_ns INTEGER NOT NULL, raw INTEGER, total INTEGER NOT NULL, delta INTEGER NOT NULL,
    quality TEXT NOT NULL, reason TEXT NOT NULL, parked_ns INTEGER NOT NULL,
    PRIMARY KEY (sink, seq)
);
"""
_MIGRATE_0_TO_1 = """
CREATE TABLE counter_state_1 (counter TEXT PRIMARY KEY, state TEXT NOT NULL) WITHOUT ROWID;
INSERT INTO counter_state_1 SELECT counter, state FROM counter_state;
DROP TABLE counter_state;
ALTER TABLE counter_state_1 RENAME TO counter_state;
"""
_MIGRATE_2_TO_3 = """
CREATE TABLE counters (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);
INSERT INTO counters (path)
    SELECT DISTINCT site || '/' || area || '/' || line || '/' || station || '/' || counter
    FROM updates;
ALTER TABLE updates RENAME TO updates_2;
CREATE TABLE updates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    counter INTEGER NOT NULL,
    ts_ns INTEGER NOT NULL, raw INTEGER, total INTEGER NOT NULL, delta INTEGER NOT NULL,
    quality TEXT NOT NULL, stored_ns INTEGER NOT NULL
);
INSERT INTO updates
    SELECT u.seq, c.id, u.ts_ns, u.raw, u.total, u.delta, u.quality, u.stored_ns
    FROM updates_2 AS u JOIN counters AS c
    ON c.path = u.site || '/' || u.area || '/' || u.line || '/' || u.station || '/' || u.counter;
DELETE FROM sqlite_sequence WHERE name = 'updates';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'updates', seq FROM sqlite_sequence WHERE name = 'updates_2';
DROP TABLE updates_2;
"""
"""The sequence is carried over: `seq` never goes back, also when every row was pruned."""
_MIGRATE_3_TO_4 = """
INSERT OR IGNORE INTO counters (path) SELECT counter FROM counter_state;
ALTER TABLE counter_state RENAME TO counter_state_3;
CREATE TABLE counter_state (counter INTEGER PRIMARY KEY, state TEXT NOT NULL);
INSERT INTO counter_state
    SELECT c.id, s.state FROM counter_state_3 AS s JOIN counters AS c ON c.path = s.counter;
DROP TABLE counter_state_3;
"""
_READ_AFTER = (
    "SELECT seq, counter, ts_ns, raw, total, delta, quality, stored_ns"
    " FROM updates WHERE seq > ? ORDER BY seq LIMIT ?"
)
_CHUNK = 50
"""Rows per INSERT statement: one statement of 50 rows costs about half of 50 one-row statements
(binding, stepping and AUTOINCREMENT's sqlite_sequence update are per statement); 350
parameters stay below every SQLite's limit (999 before 3.32)."""
_UPDATE_COLUMNS = 7
TAIL_MOST = 20_000
"""The newest committed updates kept in memory as well (up to twice this many) for the sinks
to read without SQLite: two seconds at 10,000 updates/s. A sink further behind reads SQLite."""


def _insert_updates(rows: int) -> str:
    return "INSERT INTO updates (counter, ts_ns, raw, total, delta, quality, stored_ns) VALUES " + (
        ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * rows)
    )


def _upsert_states(rows: int) -> str:
    return (
        "INSERT INTO counter_state VALUES "
        + ", ".join(["(?, ?)"] * rows)
        + " ON CONFLICT (counter) DO UPDATE SET state = excluded.state"
    )


_INSERT_UPDATE, _INSERT_UPDATES = _insert_updates(1), _insert_updates(_CHUNK)
_UPSERT_STATE, _UPSERT_STATES = _upsert_states(1), _upsert_states(_CHUNK)
_STATES = "SELECT c.path, s.state FROM counter_state AS s JOIN counters AS c ON c.id = s.counter"
_QUALITY = {quality.value: quality for quality in Quality}

WhenFull = Literal["block", "drop_oldest"]
"""What `append` does when the updates would exceed `max_records` (see OutboxSettings)."""

UpdateRow = tuple[str, int, int | None, int, int, str]
"""An update as the committer hands it to the outbox: counter path (text), ts_ns, raw, total,
delta, quality (its value)."""


def update_row(update: CounterUpdate) -> UpdateRow:
    """The row of a CounterUpdate."""
    return (
        str(update.counter),
        to_ns(update.ts),
        update.raw,
        update.total,
        update.delta,
        update.quality.value,
    )


class OutboxFullError(RuntimeError):
    """The outbox holds `max_records` undelivered rows; the batch was not stored."""


class OutboxDiskFullError(OutboxFullError):
    """The outbox's disk is full: the transaction was not stored (intake waits and retries)."""


class OutboxVersionError(RuntimeError):
    """The outbox file was written by a newer edge (its layout version is unknown here)."""


class StoredUpdate(NamedTuple):
    """An update as the outbox holds it (a named tuple: one is made per row read)."""

    seq: int
    update: CounterUpdate
    stored_ns: int


class DeadLetter(NamedTuple):
    """An update a sink rejected for good, and why."""

    seq: int
    update: CounterUpdate
    reason: str
    parked_ns: int


class Outbox:
    """Async access to the outbox file; use as `async with Outbox(...) as outbox:`."""

    def __init__(
        self,
        path: Path,
        sinks: Sequence[str],
        max_records: int,
        retain_delivered: int = 0,
        when_full: WhenFull = "block",
    ) -> None:
        self.path = path
        self.sinks = tuple(sinks)
        self.max_records = max_records
        self.retain_delivered = retain_delivered
        self.when_full = when_full
        self.dropped = 0
        """Updates deleted undelivered to make room (`when_full: drop_oldest`), since opened."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._db: sqlite3.Connection | None = None
        self._last_seq = 0
        self._cursors: dict[str, int] = {}
        self._ids: dict[str, int] = {}
        self._paths: dict[int, CounterPath] = {}
        self._tail: list[StoredUpdate] = []
        """The newest committed updates, seqs without gaps: sinks read them from here."""
        self._appended = asyncio.Event()

    async def __aenter__(self) -> Self:
        try:
            await self._run(self._open)
        except BaseException:
            await self._run(self._close)
            self._executor.shutdown(wait=True)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._run(self._close)
        self._executor.shutdown(wait=True)

    @property
    def last_seq(self) -> int:
        """The seq of the newest stored update (0 when none ever was)."""
        return self._last_seq

    def cursor(self, sink: str) -> int:
        """The seq up to which `sink` has delivered."""
        return self._cursors[sink]

    def depth(self, sink: str) -> int:
        """How many updates `sink` has not delivered yet."""
        return self._last_seq - self._cursors[sink]

    def undelivered(self) -> int:
        """Updates some sink has not delivered (what `max_records` bounds)."""
        return max((self.depth(sink) for sink in self.sinks), default=0)

    def is_full(self) -> bool:
        """True when no more updates fit."""
        return self.undelivered() >= self.max_records

    async def append(self, updates: Sequence[CounterUpdate], states: Mapping[str, str]) -> int:
        """Store updates and the counter states (JSON texts by counter path) they lead to in one
        transaction; the last seq."""
        return await self.append_rows([update_row(update) for update in updates], states)

    async def append_rows(self, rows: Sequence[UpdateRow], states: Mapping[str, str]) -> int:
        """`append` for updates given as rows. Neither argument may change until it returns."""
        last = await self._run(self._append, rows, states)
        if rows:
            self._appended.set()
        return last

    async def park(self, sink: str, stored: StoredUpdate, reason: str) -> None:
        """Keep an update `sink` rejected for good in the dead letters, with the reason."""
        await self._run(self._park, sink, stored, reason)

    async def dead_letters(self, sink: str) -> list[DeadLetter]:
        """The updates `sink` rejected for good, oldest first."""
        return await self._run(self._dead_letters, sink)

    async def gaps(self) -> list[tuple[int, int, int, int]]:
        """Every recorded gap, oldest first: (first seq, last seq, updates dropped, when in ns)."""
        return await self._run(self._gaps)

    async def states(self) -> dict[str, dict[str, Any]]:
        """Every persisted counter state, by counter path."""
        return await self._run(self._states)

    async def read_after(self, sink: str, limit: int) -> list[StoredUpdate]:
        """Up to `limit` updates after the sink's cursor, oldest first."""
        return await self._run(self._read_after, self._cursors[sink], limit)

    async def read_from(self, after_seq: int, limit: int) -> list[StoredUpdate]:
        """Up to `limit` updates after `after_seq` (at or after a sink's cursor: not pruned yet),
        oldest first: a sink reads ahead while it sends."""
        return await self._run(self._read_after, after_seq, limit)

    async def advance(self, sink: str, seq: int) -> None:
        """Move the sink's cursor to `seq` (delivered) and prune what every sink has passed."""
        await self._run(self._advance, sink, seq)

    async def oldest_pending_ns(self, sink: str) -> int | None:
        """When the oldest update the sink has not delivered was stored, or None."""
        return await self._run(self._stored_ns_after, self._cursors[sink])

    async def wait_appended(self, after_seq: int) -> None:
        """Return once an update after `after_seq` is stored."""
        while self._last_seq <= after_seq:
            self._appended.clear()
            await self._appended.wait()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    # Everything below runs on the worker thread.

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the outbox is not open")
        return self._db

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        self._db = db
        self._migrate(db)
        for counter_id, path in db.execute("SELECT id, path FROM counters"):
            self._remember(counter_id, path)
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'updates'").fetchone()
        self._last_seq = int(row[0]) if row else 0
        (first,) = db.execute("SELECT MIN(seq) FROM updates").fetchone()
        start = first - 1 if first is not None else self._last_seq
        db.execute("BEGIN IMMEDIATE")
        for (stale,) in db.execute("SELECT sink FROM cursors").fetchall():
            if stale not in self.sinks:
                log.info("outbox: sink %r is no longer configured; its cursor is removed", stale)
                db.execute("DELETE FROM cursors WHERE sink = ?", (stale,))
        for sink in self.sinks:
            db.execute("INSERT OR IGNORE INTO cursors VALUES (?, ?)", (sink, start))
        db.execute("COMMIT")
        self._cursors = dict(db.execute("SELECT sink, seq FROM cursors").fetchall())

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Bring the file to SCHEMA_VERSION (a new file is created at it)."""
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise OutboxVersionError(
                f"{self.path} has outbox layout {version}; this edge knows up to {SCHEMA_VERSION}"
            )
        if version == SCHEMA_VERSION:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            old = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'counter_state'"
            ).fetchone()
            if old is not None and version < 1:
                _execute_script(db, _MIGRATE_0_TO_1)
            columns = {row[1] for row in db.execute("PRAGMA table_info(updates)")}
            if "site" in columns:  # layout 2 or before: five text columns per update
                _execute_script(db, _MIGRATE_2_TO_3)
            key = {row[1]: row[2] for row in db.execute("PRAGMA table_info(counter_state)")}
            if key.get("counter") == "TEXT":  # layout 3 or before: states by counter path
                _execute_script(db, _MIGRATE_3_TO_4)
            _execute_script(db, SCHEMA)
            if old is not None:
                log.info("outbox: %s migrated to layout %d", self.path, SCHEMA_VERSION)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException as exc:
            _rollback(db)
            if _disk_full(exc):
                raise OutboxDiskFullError(f"the outbox's disk is full: {exc}") from exc
            raise

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _append(self, rows: Sequence[UpdateRow], states: Mapping[str, str]) -> int:
        excess = self.undelivered() + len(rows) - self.max_records if rows else 0
        if excess > 0 and self.when_full == "block":
            raise OutboxFullError(
                f"outbox holds {self.undelivered()} undelivered updates (max {self.max_records})"
            )
        db = self._conn()
        if excess > 0:
            self._drop_oldest(db, excess)
        stored = now_ns()
        ids = self._ids
        db.execute("BEGIN IMMEDIATE")
        try:
            new = {row[0] for row in rows if row[0] not in ids}
            new.update(path for path in states if path not in ids)
            for path in new:
                counter_id = db.execute("INSERT INTO counters (path) VALUES (?)", (path,)).lastrowid
                assert counter_id is not None
                self._remember(counter_id, path)
            values: list[Any] = []
            for path, ts_ns, raw, total, delta, quality in rows:
                values += (ids[path], ts_ns, raw, total, delta, quality, stored)
            _insert_chunked(db, _INSERT_UPDATES, _INSERT_UPDATE, values, _UPDATE_COLUMNS)
            values = []
            for path, state in states.items():
                values += (ids[path], state)
            _insert_chunked(db, _UPSERT_STATES, _UPSERT_STATE, values, 2)
            last = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'updates'").fetchone()
            db.execute("COMMIT")
        except BaseException as exc:
            _rollback(db)
            if _disk_full(exc):
                raise OutboxDiskFullError(f"the outbox's disk is full: {exc}") from exc
            raise
        if last is not None and rows:
            self._keep(rows, int(last[0]), stored)
        if last is not None:
            self._last_seq = int(last[0])
        return self._last_seq

    def _keep(self, rows: Sequence[UpdateRow], last: int, stored_ns: int) -> None:
        """Add committed rows (seqs up to `last`) to the tail; the oldest leave past TAIL_MOST."""
        first = last - len(rows) + 1
        tail = self._tail
        if first != self._last_seq + 1 or (tail and tail[-1].seq != self._last_seq):
            tail.clear()  # not contiguous with what the tail holds (never expected)
        ids, paths = self._ids, self._paths
        tail += [
            StoredUpdate(
                seq,
                CounterUpdate(paths[ids[path]], from_ns(ts_ns), raw, total, delta, _QUALITY[q]),
                stored_ns,
            )
            for seq, (path, ts_ns, raw, total, delta, q) in enumerate(rows, first)
        ]
        if len(tail) > 2 * TAIL_MOST:
            del tail[:-TAIL_MOST]

    def _states(self) -> dict[str, dict[str, Any]]:
        rows = self._conn().execute(_STATES).fetchall()
        return {path: json.loads(state) for path, state in rows}

    def _read_after(self, cursor: int, limit: int) -> list[StoredUpdate]:
        tail = self._tail
        if tail and tail[0].seq <= cursor + 1 <= tail[-1].seq:
            start = cursor + 1 - tail[0].seq
            return tail[start : start + limit]
        rows = self._conn().execute(_READ_AFTER, (cursor, limit)).fetchall()
        paths = self._paths
        stored: list[StoredUpdate] = []
        for seq, counter_id, ts_ns, raw, total, delta, quality, stored_ns in rows:
            update = CounterUpdate(
                paths[counter_id], from_ns(ts_ns), raw, total, delta, _QUALITY[quality]
            )
            stored.append(StoredUpdate(seq, update, stored_ns))
        return stored

    def _advance(self, sink: str, seq: int) -> None:
        db = self._conn()
        cursors = self._cursors | {sink: seq}
        passed = min(cursors[name] for name in self.sinks)
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("UPDATE cursors SET seq = ? WHERE sink = ?", (seq, sink))
            db.execute("DELETE FROM updates WHERE seq <= ?", (passed - self.retain_delivered,))
            db.execute("COMMIT")
        except BaseException as exc:
            _rollback(db)
            if _disk_full(exc):
                raise OutboxDiskFullError(f"the outbox's disk is full: {exc}") from exc
            raise
        self._cursors = cursors

    def _drop_oldest(self, db: sqlite3.Connection, count: int) -> None:
        """Delete the `count` oldest undelivered updates, move every cursor past them and
        record the gap (one transaction)."""
        oldest = min(self._cursors.values())
        db.execute("BEGIN IMMEDIATE")
        try:
            (last,) = db.execute(
                "SELECT MAX(seq) FROM (SELECT seq FROM updates WHERE seq > ? ORDER BY seq LIMIT ?)",
                (oldest, count),
            ).fetchone()
            if last is None:
                db.execute("ROLLBACK")
                return
            (dropped,) = db.execute(
                "SELECT COUNT(*) FROM updates WHERE seq > ? AND seq <= ?", (oldest, last)
            ).fetchone()
            db.execute("DELETE FROM updates WHERE seq > ? AND seq <= ?", (oldest, last))
            db.execute("UPDATE cursors SET seq = ? WHERE seq < ?", (last, last))
            db.execute(
                "INSERT INTO gaps VALUES (?, ?, ?, ?)", (oldest + 1, last, dropped, now_ns())
            )
            db.execute("COMMIT")
        except BaseException as exc:
            _rollback(db)
            if _disk_full(exc):
                raise OutboxDiskFullError(f"the outbox's disk is full: {exc}") from exc
            raise
        self._cursors = {sink: max(seq, last) for sink, seq in self._cursors.items()}
        self._tail.clear()
        self.dropped += dropped
        log.warning(
            "outbox full: dropped %d undelivered updates (seq %d..%d) to make room; totals stay"
            " right, their history points are lost",
            dropped,
            oldest + 1,
            last,
        )

    def _gaps(self) -> list[tuple[int, int, int, int]]:
        return self._conn().execute("SELECT * FROM gaps ORDER BY first_seq").fetchall()

    def _remember(self, counter_id: int, path: str) -> None:
        """Know a counter's id both ways (the plant's counters bound these maps)."""
        self._ids[path] = counter_id
        self._paths[counter_id] = CounterPath(*map(sys.intern, path.split("/")))

    def _park(self, sink: str, stored: StoredUpdate, reason: str) -> None:
        update = stored.update
        row = (
            *(sink, stored.seq, str(update.counter), to_ns(update.ts), update.raw, update.total),
            *(update.delta, update.quality.value, reason, now_ns()),
        )
        self._conn().execute(
            "INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row
        )

    def _dead_letters(self, sink: str) -> list[DeadLetter]:
        rows = self._conn().execute(
            "SELECT seq, counter, ts_ns, raw, total, delta, quality, reason, parked_ns"
            " FROM dead_letters WHERE sink = ? ORDER BY seq",
            (sink,),
        )
        return [
            DeadLetter(
                seq,
                CounterUpdate(
                    CounterPath.parse(counter), from_ns(ts_ns), raw, total, delta, _QUALITY[quality]
                ),
                reason,
                parked_ns,
            )
            for seq, counter, ts_ns, raw, total, delta, quality, reason, parked_ns in rows
        ]

    def _stored_ns_after(self, cursor: int) -> int | None:
        row = (
            self._conn()
            .execute("SELECT stored_ns FROM updates WHERE seq > ? ORDER BY seq LIMIT 1", (cursor,))
            .fetchone()
        )
        return int(row[0]) if row else None


def _insert_chunked(
    db: sqlite3.Connection, chunk_sql: str, row_sql: str, values: list[Any], columns: int
) -> None:
    """Insert rows given as one flat list of values (`columns` per row), in order: `_CHUNK`
    rows per `chunk_sql` statement, the rest one `row_sql` statement each."""
    step = _CHUNK * columns
    whole = len(values) - len(values) % step
    for start in range(0, whole, step):
        db.execute(chunk_sql, values[start : start + step])
    if whole < len(values):
        rest = values[whole:]
        db.executemany(row_sql, [rest[i : i + columns] for i in range(0, len(rest), columns)])


def _execute_script(db: sqlite3.Connection, script: str) -> None:
    """Run `;`-separated statements inside the caller's transaction (executescript commits)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _rollback(db: sqlite3.Connection) -> None:
    """Roll back the open transaction; SQLite has already done so after some errors (a full
    disk), and a second ROLLBACK would hide the first error."""
    if db.in_transaction:
        db.execute("ROLLBACK")


def _disk_full(exc: BaseException) -> bool:
    return (
        isinstance(exc, sqlite3.OperationalError)
        and exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_FULL
    )
