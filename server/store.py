"""The server's state store: a SQLite file (`state_dir/server.sqlite`) or a PostgreSQL database
shared by replicas, through the same code (`server.database`).

Tables: `current_shift` (one row per line: the running shift's baselines, latest totals and
corrections, as JSON objects keyed `station/counter`), `shift_history` (finished shifts, one row
per line and shift start), `audit` (accepted writes), `milestone_totals` (each milestone
counter's latest known total, keyed by its path) and `milestone_crossings` (one row per crossed
milestone value, with whether it was published on the live bus, written to InfluxDB and
annotated in Grafana; see server.crossings). The alert tables are `server.alerts.alert_store`'s,
in the same database and transactions (`transaction`, `query`). Times are ISO 8601 UTC text.

Replicas sharing the store each save their own view of a line's running shift; its corrections
are written only by `correct` (the row locked), and a save keeps them while the shift is the same.

Methods are blocking and thread-safe: async code calls them through `asyncio.to_thread`.
Database errors surface as `StoreError`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Literal

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)

from server.crossings import Crossing, MilestoneChanges
from server.database import Database
from server.persisted import AuditEntry, Changes, FinishedShift, ShiftRecord
from taktline.model.paths import CounterPath

METADATA = MetaData()

Table(
    "current_shift",
    METADATA,
    Column("line", Text, primary_key=True),
    Column("shift", Text, nullable=False),
    Column("start", Text, nullable=False),
    Column("end", Text, nullable=False),
    Column("target", BigInteger, nullable=False),
    Column("output", Text, nullable=False),
    Column("baselines", Text, nullable=False),
    Column("latest", Text, nullable=False),
    Column("corrections", Text, nullable=False),
)
Table(
    "shift_history",
    METADATA,
    Column("line", Text, nullable=False),
    Column("shift", Text, nullable=False),
    Column("start", Text, nullable=False),
    Column("end", Text, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("target", BigInteger, nullable=False),
    Column("corrections", BigInteger, nullable=False),
    Column("complete", Integer, nullable=False),
    PrimaryKeyConstraint("line", "start"),
)
Table(
    "audit",
    METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("at", Text, nullable=False),
    Column("endpoint", Text, nullable=False),
    Column("line", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("who", Text, nullable=False),
    Column("client", Text, nullable=False),
    sqlite_autoincrement=True,
)
Table(
    "milestone_totals",
    METADATA,
    Column("counter", Text, primary_key=True),
    Column("total", BigInteger, nullable=False),
)
Table(
    "milestone_crossings",
    METADATA,
    Column("milestone", Text, nullable=False),
    Column("value", BigInteger, nullable=False),
    Column("name", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("counter", Text, nullable=False),
    Column("ts", Text, nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("published", Integer, nullable=False, server_default=text("0")),
    Column("written", Integer, nullable=False, server_default=text("0")),
    Column("annotated", Integer, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint("milestone", "value"),
)

CrossingOutput = Literal["published", "written", "annotated"]
"""An output of a crossing: the live-bus message, the InfluxDB point, the Grafana annotation."""

_OUTPUT_COLUMNS: dict[CrossingOutput, str] = {
    "published": "published",
    "written": "written",
    "annotated": "annotated",
}


class ShiftNotStored(Exception):
    """A correction for a shift that is not the line's stored running shift; nothing changed."""


class StateStore:
    """`with StateStore(folder_or_url) as store:`: a folder (SQLite, made when missing) or a
    PostgreSQL URL (`server.database.Database.open`); the tables are made when missing."""

    def __init__(self, location: Path | str):
        self.database = Database.open(location)
        self.where = self.database.where
        try:
            self.database.create(METADATA)
        except BaseException:
            self.database.close()
            raise

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
        """Close the connections."""
        self.database.close()

    def current(self) -> dict[str, ShiftRecord]:
        """Every line's running shift as last written."""
        with self.query() as db:
            rows = db.execute(
                text(
                    'SELECT line, shift, start, "end", target, output, baselines, latest,'
                    " corrections FROM current_shift"
                )
            ).all()
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
        with self.transaction() as db:
            for line, record in changes.current.items():
                if record is None:
                    db.execute(text("DELETE FROM current_shift WHERE line = :line"), {"line": line})
                    continue
                db.execute(
                    _SAVE_CURRENT,
                    {
                        "line": line,
                        "shift": record.shift,
                        "start": _text(record.start),
                        "end": _text(record.end),
                        "target": record.target,
                        "output": record.output,
                        "baselines": json.dumps(dict(record.baselines), sort_keys=True),
                        "latest": json.dumps(dict(record.latest), sort_keys=True),
                        "corrections": json.dumps(dict(record.corrections), sort_keys=True),
                    },
                )
            for shift in changes.finished:
                db.execute(
                    _SAVE_FINISHED,
                    {
                        "line": shift.line,
                        "shift": shift.shift,
                        "start": _text(shift.start),
                        "end": _text(shift.end),
                        "count": shift.count,
                        "target": shift.target,
                        "corrections": shift.corrections,
                        "complete": int(shift.complete),
                    },
                )
            return None if audit is None else insert_audit(db, audit)

    def correct(
        self, line: str, start: dt.datetime, counter: str, delta: int, audit: AuditEntry
    ) -> tuple[dict[str, int], int]:
        """Add `delta` to a counter's (`station/counter`) corrections of the line's shift that
        began at `start`, with the audit entry, in one transaction (the row locked: corrections
        made at once, on any replica, all count). Returns the line's corrections after and the
        entry's id; raises ShiftNotStored when the stored row is missing or another shift's."""
        lock = " FOR UPDATE" if self.database.dialect == "postgresql" else ""
        with self.transaction() as db:
            row = db.execute(text(_READ_CORRECTIONS + lock), {"line": line}).first()
            if row is None or _time(row[0]) != start:
                stored = "none" if row is None else f"the one from {row[0]}"
                raise ShiftNotStored(
                    f"the stored shift of line {line} is not the one from {_text(start)}"
                    f" ({stored}): try again"
                )
            corrections: dict[str, int] = json.loads(row[1])
            corrections[counter] = corrections.get(counter, 0) + delta
            db.execute(
                _WRITE_CORRECTIONS,
                {"line": line, "corrections": json.dumps(corrections, sort_keys=True)},
            )
            return corrections, insert_audit(db, audit)

    def history(self, line: str, limit: int) -> list[FinishedShift]:
        """A line's finished shifts, newest first."""
        with self.query() as db:
            rows = db.execute(
                text(
                    'SELECT line, shift, start, "end", count, target, corrections, complete'
                    " FROM shift_history WHERE line = :line ORDER BY start DESC LIMIT :limit"
                ),
                {"line": line, "limit": limit},
            ).all()
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
        with self.query() as db:
            rows = db.execute(
                text(
                    "SELECT id, at, endpoint, line, body, who, client FROM audit"
                    " ORDER BY id DESC LIMIT :limit"
                ),
                {"limit": limit},
            ).all()
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
        with self.query() as db:
            rows = db.execute(text("SELECT counter, total FROM milestone_totals")).all()
        return {CounterPath.parse(row[0]): row[1] for row in rows}

    def crossed(self) -> list[tuple[str, int]]:
        """Every crossed (milestone id, value)."""
        with self.query() as db:
            rows = db.execute(text("SELECT milestone, value FROM milestone_crossings")).all()
        return [(row[0], row[1]) for row in rows]

    def save_milestones(self, changes: MilestoneChanges) -> None:
        """Write counter totals (never lowering one) and new crossings in one transaction; a
        crossing already stored (by this server or another replica) is kept as it is."""
        totals = [{"counter": str(path), "total": total} for path, total in changes.totals.items()]
        crossings = [
            {
                "milestone": c.milestone,
                "value": c.value,
                "name": c.name,
                "scope": c.scope,
                "counter": str(c.counter),
                "ts": _text(c.ts),
                "total": c.total,
            }
            for c in changes.crossings
        ]
        with self.transaction() as db:
            if totals:
                db.execute(_SAVE_TOTAL, totals)
            if crossings:
                db.execute(_SAVE_CROSSING, crossings)

    def pending_crossings(self, output: CrossingOutput) -> list[Crossing]:
        """Crossings not yet published (written, annotated), oldest first."""
        column = _OUTPUT_COLUMNS[output]
        with self.query() as db:
            rows = db.execute(
                text(
                    "SELECT milestone, name, value, scope, counter, ts, total"
                    f" FROM milestone_crossings WHERE {column} = 0 ORDER BY ts, milestone, value"
                )
            ).all()
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
        if not keys:
            return
        column = _OUTPUT_COLUMNS[output]
        with self.transaction() as db:
            db.execute(
                text(
                    f"UPDATE milestone_crossings SET {column} = 1"
                    " WHERE milestone = :milestone AND value = :value"
                ),
                [{"milestone": milestone, "value": value} for milestone, value in keys],
            )

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction, for the owners of other tables in this store
        (`server.alerts.alert_store`): committed when the block ends, rolled back when it
        raises; database errors become StoreError."""
        with self.database.transaction() as db:
            yield db

    @contextmanager
    def query(self) -> Iterator[Connection]:
        """A connection for reads (see `transaction`)."""
        with self.database.query() as db:
            yield db


_SAVE_CURRENT = text(
    'INSERT INTO current_shift (line, shift, start, "end", target, output, baselines, latest,'
    " corrections) VALUES (:line, :shift, :start, :end, :target, :output, :baselines, :latest,"
    " :corrections) ON CONFLICT (line) DO UPDATE SET shift = excluded.shift,"
    ' start = excluded.start, "end" = excluded."end", target = excluded.target,'
    " output = excluded.output, baselines = excluded.baselines, latest = excluded.latest,"
    " corrections = CASE WHEN current_shift.start = excluded.start"
    " THEN current_shift.corrections ELSE excluded.corrections END"
)
"""A line's running shift; its stored corrections are kept while the shift is the same (they
are written by `StateStore.correct` only, possibly by another replica)."""
_READ_CORRECTIONS = "SELECT start, corrections FROM current_shift WHERE line = :line"
_WRITE_CORRECTIONS = text("UPDATE current_shift SET corrections = :corrections WHERE line = :line")
_SAVE_FINISHED = text(
    'INSERT INTO shift_history (line, shift, start, "end", count, target, corrections, complete)'
    " VALUES (:line, :shift, :start, :end, :count, :target, :corrections, :complete)"
    " ON CONFLICT (line, start) DO UPDATE SET shift = excluded.shift,"
    ' "end" = excluded."end", count = excluded.count, target = excluded.target,'
    " corrections = excluded.corrections, complete = excluded.complete"
)
_SAVE_TOTAL = text(
    "INSERT INTO milestone_totals (counter, total) VALUES (:counter, :total)"
    " ON CONFLICT (counter) DO UPDATE SET total = CASE"
    " WHEN excluded.total > milestone_totals.total THEN excluded.total"
    " ELSE milestone_totals.total END"
)
_SAVE_CROSSING = text(
    "INSERT INTO milestone_crossings (milestone, value, name, scope, counter, ts, total)"
    " VALUES (:milestone, :value, :name, :scope, :counter, :ts, :total)"
    " ON CONFLICT (milestone, value) DO NOTHING"
)


def insert_audit(db: Connection, audit: AuditEntry) -> int:
    """Add an audit entry inside a transaction; returns its id."""
    audit_id = db.execute(
        text(
            "INSERT INTO audit (at, endpoint, line, body, who, client)"
            " VALUES (:at, :endpoint, :line, :body, :who, :client) RETURNING id"
        ),
        {
            "at": _text(audit.at),
            "endpoint": audit.endpoint,
            "line": audit.line,
            "body": json.dumps(audit.body, sort_keys=True),
            "who": audit.by,
            "client": audit.client,
        },
    ).scalar_one()
    return int(audit_id)


def _text(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)
