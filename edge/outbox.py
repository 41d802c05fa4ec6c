"""The durable outbox: counter updates and counter states in SQLite, one cursor per sink.

SQLite runs in WAL mode with `synchronous=FULL`: once `append` returns, the batch and the counter
states it produced survive a crash or power loss, together or not at all (one transaction). All
SQLite calls run on one dedicated worker thread that owns the connection.

`seq` is AUTOINCREMENT, so it never goes back even when every row has been delivered and pruned.
Each sink reads the rows after its cursor and advances it once they are delivered. Rows every
sink has passed are pruned, except the newest `retain_delivered` (history for an edge without
InfluxDB). `max_records` bounds the rows some sink has not passed: when an append would exceed
it, `append` raises `OutboxFullError` and stores nothing; nothing is ever dropped silently.

Counter states are JSON texts in a WITHOUT ROWID table keyed by counter path, written with an
upsert, only for the counters a batch touched. The file's layout version is `PRAGMA
user_version` (SCHEMA_VERSION); opening an older file migrates it in one transaction, keeping its
updates, counter states and cursors, and a file of a newer version is refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from edge.clock import from_ns, now_ns, to_ns
from taktline.model.paths import CounterPath
from taktline.records import CounterUpdate, Quality

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMA_VERSION = 1
"""0: counter_state was a rowid table (replaced row by row); 1: WITHOUT ROWID, upserted."""
SCHEMA = """
CREATE TABLE IF NOT EXISTS updates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    site TEXT NOT NULL, area TEXT NOT NULL, line TEXT NOT NULL, station TEXT NOT NULL,
    counter TEXT NOT NULL,
    ts_ns INTEGER NOT NULL, raw INTEGER, total INTEGER NOT NULL, delta INTEGER NOT NULL,
    quality TEXT NOT NULL, stored_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counter_state (
    counter TEXT PRIMARY KEY, state TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursors (sink TEXT PRIMARY KEY, seq INTEGER NOT NULL);
"""
_MIGRATE_0_TO_1 = """
CREATE TABLE counter_state_1 (counter TEXT PRIMARY KEY, state TEXT NOT NULL) WITHOUT ROWID;
INSERT INTO counter_state_1 SELECT counter, state FROM counter_state;
DROP TABLE counter_state;
ALTER TABLE counter_state_1 RENAME TO counter_state;
"""
_COLUMNS = "seq, site, area, line, station, counter, ts_ns, raw, total, delta, quality, stored_ns"
_INSERT_UPDATE = (
    "INSERT INTO updates (site, area, line, station, counter, ts_ns, raw, total, delta, quality,"
    " stored_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_STATE = (
    "INSERT INTO counter_state VALUES (?, ?)"
    " ON CONFLICT (counter) DO UPDATE SET state = excluded.state"
)
_QUALITY = {quality.value: quality for quality in Quality}
_encode_state = json.JSONEncoder(check_circular=False, separators=(",", ":")).encode


class OutboxFullError(RuntimeError):
    """The outbox holds `max_records` undelivered rows; the batch was not stored."""


class OutboxVersionError(RuntimeError):
    """The outbox file was written by a newer edge (its layout version is unknown here)."""


@dataclass(frozen=True, slots=True)
class StoredUpdate:
    """An update as the outbox holds it."""

    seq: int
    update: CounterUpdate
    stored_ns: int


class Outbox:
    """Async access to the outbox file; use as `async with Outbox(...) as outbox:`."""

    def __init__(
        self,
        path: Path,
        sinks: Sequence[str],
        max_records: int,
        retain_delivered: int = 0,
    ) -> None:
        self.path = path
        self.sinks = tuple(sinks)
        self.max_records = max_records
        self.retain_delivered = retain_delivered
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._db: sqlite3.Connection | None = None
        self._last_seq = 0
        self._cursors: dict[str, int] = {}
        self._paths: dict[tuple[str, str, str, str, str], CounterPath] = {}
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

    async def append(
        self, updates: Sequence[CounterUpdate], states: Mapping[str, dict[str, Any]]
    ) -> int:
        """Store updates and the counter states they lead to in one transaction; the last seq."""
        last = await self._run(self._append, list(updates), dict(states))
        if updates:
            self._appended.set()
        return last

    async def states(self) -> dict[str, dict[str, Any]]:
        """Every persisted counter state, by counter path."""
        return await self._run(self._states)

    async def read_after(self, sink: str, limit: int) -> list[StoredUpdate]:
        """Up to `limit` updates after the sink's cursor, oldest first."""
        return await self._run(self._read_after, self._cursors[sink], limit)

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
            if old is not None:  # version 0
                for statement in _MIGRATE_0_TO_1.split(";"):
                    if statement.strip():
                        db.execute(statement)
                log.info("outbox: %s migrated to layout %d", self.path, SCHEMA_VERSION)
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _append(self, updates: list[CounterUpdate], states: dict[str, dict[str, Any]]) -> int:
        if updates and self.undelivered() + len(updates) > self.max_records:
            raise OutboxFullError(
                f"outbox holds {self.undelivered()} undelivered updates (max {self.max_records})"
            )
        db = self._conn()
        stored = now_ns()
        rows = [
            (
                (c := u.counter).site,
                c.area,
                c.line,
                c.station,
                c.counter,
                to_ns(u.ts),
                u.raw,
                u.total,
                u.delta,
                u.quality.value,
                stored,
            )
            for u in updates
        ]
        encoded = [(path, _encode_state(state)) for path, state in states.items()]
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(_INSERT_UPDATE, rows)
            db.executemany(_UPSERT_STATE, encoded)
            last = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'updates'").fetchone()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if last is not None:
            self._last_seq = int(last[0])
        return self._last_seq

    def _states(self) -> dict[str, dict[str, Any]]:
        rows = self._conn().execute("SELECT counter, state FROM counter_state").fetchall()
        return {path: json.loads(state) for path, state in rows}

    def _read_after(self, cursor: int, limit: int) -> list[StoredUpdate]:
        rows = (
            self._conn()
            .execute(
                f"SELECT {_COLUMNS} FROM updates WHERE seq > ? ORDER BY seq LIMIT ?",
                (cursor, limit),
            )
            .fetchall()
        )
        paths = self._paths
        stored: list[StoredUpdate] = []
        for (
            seq,
            site,
            area,
            line,
            station,
            name,
            ts_ns,
            raw,
            total,
            delta,
            quality,
            stored_ns,
        ) in rows:
            key = (site, area, line, station, name)
            path = paths.get(key)
            if path is None:  # one per counter: the plant's counters bound this cache
                path = paths[key] = CounterPath(*key)
            update = CounterUpdate(path, from_ns(ts_ns), raw, total, delta, _QUALITY[quality])
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
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._cursors = cursors

    def _stored_ns_after(self, cursor: int) -> int | None:
        row = (
            self._conn()
            .execute("SELECT stored_ns FROM updates WHERE seq > ? ORDER BY seq LIMIT 1", (cursor,))
            .fetchone()
        )
        return int(row[0]) if row else None
