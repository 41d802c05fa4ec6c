"""The server's state store: one SQLite file (`state_dir/server.sqlite`, WAL).

Tables: `current_shift` (one row per line: the running shift's baselines, latest totals and
corrections, as JSON objects keyed `station/counter`), `shift_history` (finished shifts, one row
per line and shift start), `audit` (accepted writes), `milestone_totals` (each milestone
counter's latest known total, keyed by its path) and `milestone_crossings` (one row per crossed
milestone value, with whether it was published on the live bus, written to InfluxDB and
annotated in Grafana; see server.crossings). The alert tables are `server.alerts.alert_store`'s,
in the same file and transactions (`transaction`, `query`). Times are ISO 8601 UTC text.

Methods are blocking and thread-safe (one connection behind a lock): async code calls them
through `asyncio.to_thread`. SQLite errors surface as `StoreError`.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Literal

from server.crossings import Crossing, MilestoneChanges
from server.persisted import AuditEntry, Changes, FinishedShift, ShiftRecord
from taktline.model.paths import CounterPath

STORE_FILE = "server.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS current_shift (
    line TEXT PRIMARY KEY,
    shift TEXT NOT NULL,
    start TEXT NOT NULL,
    "end" TEXT NOT NULL,
    target INTEGER NOT NULL,
    output TEXT NOT NULL,
    baselines TEXT NOT NULL,
    latest TEXT NOT NULL,
    corrections TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shift_history (
    line TEXT NOT NULL,
    shift TEXT NOT NULL,
    start TEXT NOT NULL,
    "end" TEXT NOT NULL,
    count INTEGER NOT NULL,
    target INTEGER NOT NULL,
    corrections INTEGER NOT NULL,
    complete INTEGER NOT NULL,
    PRIMARY KEY (line, start)
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    line TEXT NOT NULL,
    body TEXT NOT NULL,
    who TEXT NOT NULL,
    client TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS milestone_totals (
    counter TEXT PRIMARY KEY,
    total INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS milestone_crossings (
    milestone TEXT NOT NULL,
    value INTEGER NOT NULL,
    name TEXT NOT NULL,
    scope TEXT NOT NULL,
    counter TEXT NOT NULL,
    ts TEXT NOT NULL,
    total INTEGER NOT NULL,
    published INTEGER NOT NULL DEFAULT 0,
    written INTEGER NOT NULL DEFAULT 0,
    annotated INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (milestone, value)
);
"""

CrossingOutput = Literal["published", "written", "annotated"]
"""An output of a crossing: the live-bus message, the InfluxDB point, the Grafana annotation."""

_OUTPUT_COLUMNS: dict[CrossingOutput, str] = {
    "published": "published",
    "written": "written",
    "annotated": "annotated",
}


class StoreError(RuntimeError):
    """The state store cannot be opened, read or written."""


class StateStore:
    """`with StateStore(folder) as store:`; creates the folder and the file when missing."""

    def __init__(self, folder: Path):
        self.path = folder / STORE_FILE
        self._lock = threading.Lock()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the state store {self.path}: {exc}") from None

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

    def current(self) -> dict[str, ShiftRecord]:
        """Every line's running shift as last written."""
        with self._reading():
            rows = self._db.execute(
                'SELECT line, shift, start, "end", target, output, baselines, latest, corrections'
                " FROM current_shift"
            ).fetchall()
        return {
            row[0]: ShiftRecord(
                line=row[0],
                shift=row[1],
                start=_time(row[2]),
                end=_time(row[3]),
                target=row[4],
                output=row[5],
                baselines=json.loads(row[6]),
                latest=json.loads(row[7]),
                corrections=json.loads(row[8]),
            )
            for row in rows
        }

    def save(self, changes: Changes, audit: AuditEntry | None = None) -> int | None:
        """Write changes (and an audit entry) in one transaction; returns the entry's id."""
        with self._writing():
            for line, record in changes.current.items():
                if record is None:
                    self._db.execute("DELETE FROM current_shift WHERE line = ?", (line,))
                    continue
                self._db.execute(
                    "INSERT OR REPLACE INTO current_shift VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        line,
                        record.shift,
                        _text(record.start),
                        _text(record.end),
                        record.target,
                        record.output,
                        json.dumps(dict(record.baselines), sort_keys=True),
                        json.dumps(dict(record.latest), sort_keys=True),
                        json.dumps(dict(record.corrections), sort_keys=True),
                    ),
                )
            for shift in changes.finished:
                self._db.execute(
                    "INSERT OR REPLACE INTO shift_history VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        shift.line,
                        shift.shift,
                        _text(shift.start),
                        _text(shift.end),
                        shift.count,
                        shift.target,
                        shift.corrections,
                        int(shift.complete),
                    ),
                )
            return None if audit is None else insert_audit(self._db, audit)

    def history(self, line: str, limit: int) -> list[FinishedShift]:
        """A line's finished shifts, newest first."""
        with self._reading():
            rows = self._db.execute(
                'SELECT line, shift, start, "end", count, target, corrections, complete'
                " FROM shift_history WHERE line = ? ORDER BY start DESC LIMIT ?",
                (line, limit),
            ).fetchall()
        return [
            FinishedShift(
                line=row[0],
                shift=row[1],
                start=_time(row[2]),
                end=_time(row[3]),
                count=row[4],
                target=row[5],
                corrections=row[6],
                complete=bool(row[7]),
            )
            for row in rows
        ]

    def audit(self, limit: int) -> list[AuditEntry]:
        """The latest audit entries, newest first."""
        with self._reading():
            rows = self._db.execute(
                "SELECT id, at, endpoint, line, body, who, client FROM audit"
                " ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            AuditEntry(
                id=row[0],
                at=_time(row[1]),
                endpoint=row[2],
                line=row[3],
                body=json.loads(row[4]),
                by=row[5],
                client=row[6],
            )
            for row in rows
        ]

    def milestone_totals(self) -> dict[CounterPath, int]:
        """Each milestone counter's latest known total."""
        with self._reading():
            rows = self._db.execute("SELECT counter, total FROM milestone_totals").fetchall()
        return {CounterPath.parse(row[0]): row[1] for row in rows}

    def crossed(self) -> list[tuple[str, int]]:
        """Every crossed (milestone id, value)."""
        with self._reading():
            rows = self._db.execute("SELECT milestone, value FROM milestone_crossings").fetchall()
        return [(row[0], row[1]) for row in rows]

    def save_milestones(self, changes: MilestoneChanges) -> None:
        """Write counter totals (never lowering one) and new crossings in one transaction; a
        crossing already stored is kept as it is."""
        with self._writing():
            self._db.executemany(
                "INSERT INTO milestone_totals VALUES (?, ?) ON CONFLICT (counter)"
                " DO UPDATE SET total = MAX(total, excluded.total)",
                [(str(path), total) for path, total in changes.totals.items()],
            )
            self._db.executemany(
                "INSERT OR IGNORE INTO milestone_crossings"
                " (milestone, value, name, scope, counter, ts, total) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (c.milestone, c.value, c.name, c.scope, str(c.counter), _text(c.ts), c.total)
                    for c in changes.crossings
                ],
            )

    def pending_crossings(self, output: CrossingOutput) -> list[Crossing]:
        """Crossings not yet published (written, annotated), oldest first."""
        column = _OUTPUT_COLUMNS[output]
        with self._reading():
            rows = self._db.execute(
                "SELECT milestone, name, value, scope, counter, ts, total FROM milestone_crossings"
                f" WHERE {column} = 0 ORDER BY ts, milestone, value"
            ).fetchall()
        return [
            Crossing(
                milestone=row[0],
                name=row[1],
                value=row[2],
                scope=row[3],
                counter=CounterPath.parse(row[4]),
                ts=_time(row[5]),
                total=row[6],
            )
            for row in rows
        ]

    def mark_crossings(self, output: CrossingOutput, keys: list[tuple[str, int]]) -> None:
        """Record crossings (milestone id, value) as published (written, annotated)."""
        column = _OUTPUT_COLUMNS[output]
        with self._writing():
            self._db.executemany(
                f"UPDATE milestone_crossings SET {column} = 1 WHERE milestone = ? AND value = ?",
                keys,
            )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on the store's connection, for the owners of other tables in
        this file (`server.alerts.alert_store`): committed when the block ends, rolled back
        when it raises; SQLite errors become StoreError."""
        with self._writing():
            yield self._db

    @contextmanager
    def query(self) -> Iterator[sqlite3.Connection]:
        """The store's connection for reads (see `transaction`)."""
        with self._reading():
            yield self._db

    @contextmanager
    def _reading(self) -> Iterator[None]:
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the state store {self.path}: {exc}") from None

    @contextmanager
    def _writing(self) -> Iterator[None]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write the state store {self.path}: {exc}") from None


def insert_audit(db: sqlite3.Connection, audit: AuditEntry) -> int:
    """Add an audit entry inside a transaction; returns its id."""
    cursor = db.execute(
        "INSERT INTO audit (at, endpoint, line, body, who, client) VALUES (?, ?, ?, ?, ?, ?)",
        (
            _text(audit.at),
            audit.endpoint,
            audit.line,
            json.dumps(audit.body, sort_keys=True),
            audit.by,
            audit.client,
        ),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _text(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)
