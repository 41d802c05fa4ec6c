"""Alerts in the server's state store (`state_dir/server.sqlite`), next to the shift state.

Tables: `alerts` (one row per alert or milestone notice: its key, state, escalation plan as
JSON, acknowledgement, resolution, and whether Grafana has its annotation) and
`alert_notifications` (one row per message and channel: who, which level, why, when, and how
the channel answered). A partial unique index keeps one open alert per key (rule, scope) and
one notice per key. Times are ISO 8601 UTC text.

An alert is written whole (`save`: an upsert of its row and its notification rows), so a
failed write is retried by writing it again. An acknowledgement is written with its audit
entry in one transaction. Methods are blocking; async code calls them through
`asyncio.to_thread`. SQLite errors surface as `server.store.StoreError`.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable
from typing import Any, cast

from server.alerts.records import (
    OPEN_STATES,
    AckVia,
    Alert,
    AlertKind,
    AlertState,
    Notification,
    Reason,
    Result,
    Step,
)
from server.alerts.transitions import AlertKey, RuleName
from server.persisted import AuditEntry
from server.store import StateStore, insert_audit
from taktline.model.alerts import Severity

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    rule TEXT NOT NULL,
    scope TEXT NOT NULL,
    severity TEXT NOT NULL,
    lines TEXT NOT NULL,
    message TEXT NOT NULL,
    since TEXT NOT NULL,
    raised_at TEXT NOT NULL,
    state TEXT NOT NULL,
    details TEXT NOT NULL,
    chain TEXT NOT NULL,
    next_step INTEGER NOT NULL,
    current TEXT NOT NULL,
    next_repeat_at TEXT,
    acknowledged_at TEXT,
    acknowledged_by TEXT,
    acknowledged_via TEXT,
    resolved_at TEXT,
    resolved_message TEXT,
    annotated INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_open_key ON alerts (rule, scope)
    WHERE state IN ('firing', 'notified', 'acknowledged');
CREATE UNIQUE INDEX IF NOT EXISTS alerts_notice_key ON alerts (rule, scope)
    WHERE kind = 'notice';
CREATE TABLE IF NOT EXISTS alert_notifications (
    alert_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    person TEXT NOT NULL,
    level TEXT NOT NULL,
    reason TEXT NOT NULL,
    channel TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    result TEXT NOT NULL,
    result_at TEXT,
    attempts INTEGER NOT NULL,
    error TEXT,
    PRIMARY KEY (alert_id, seq)
);
"""

_COLUMNS = (
    "id, kind, rule, scope, severity, lines, message, since, raised_at, state, details, chain,"
    " next_step, current, next_repeat_at, acknowledged_at, acknowledged_by, acknowledged_via,"
    " resolved_at, resolved_message"
)
_NAMES = [name.strip() for name in _COLUMNS.split(",")]
_UPSERT = (
    f"INSERT INTO alerts ({_COLUMNS}) VALUES ({', '.join('?' for _ in _NAMES)})"
    " ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _NAMES[1:])
)
_OPEN = "(" + ", ".join(f"'{state}'" for state in OPEN_STATES) + ")"
_CLOSED = "('resolved', 'notice')"


class AlertStore:
    """The alert tables of one state store (made when missing)."""

    def __init__(self, store: StateStore):
        self.store = store
        with store.transaction() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)

    def save(self, alerts: Iterable[Alert], audit: AuditEntry | None = None) -> int | None:
        """Write alerts whole (and an audit entry) in one transaction; returns the entry's id."""
        with self.store.transaction() as db:
            for alert in alerts:
                db.execute(_UPSERT, _row(alert))
                db.executemany(
                    "INSERT OR REPLACE INTO alert_notifications VALUES"
                    " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        _notification_row(alert.id, seq, n)
                        for seq, n in enumerate(alert.notifications)
                    ],
                )
            return None if audit is None else insert_audit(db, audit)

    def save_notification(self, alert_id: int, seq: int, notification: Notification) -> None:
        """Write one notification of an alert (a result that came after it was resolved)."""
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO alert_notifications VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _notification_row(alert_id, seq, notification),
            )

    def interrupt_pending(self) -> int:
        """Mark notifications still waiting for a channel's answer as interrupted (at start:
        the previous process's queues are gone); returns how many."""
        with self.store.transaction() as db:
            cursor = db.execute(
                "UPDATE alert_notifications SET result = 'interrupted' WHERE result = 'pending'"
            )
            return cursor.rowcount

    def open_alerts(self) -> list[Alert]:
        """Every alert firing, notified or acknowledged, oldest first."""
        return self._select(f"WHERE state IN {_OPEN} ORDER BY id")

    def history(self, limit: int) -> list[Alert]:
        """Resolved alerts and notices, the latest resolved first."""
        return self._select(
            f"WHERE state IN {_CLOSED} ORDER BY COALESCE(resolved_at, raised_at) DESC, id DESC"
            " LIMIT ?",
            (limit,),
        )

    def get(self, alert_id: int) -> Alert | None:
        """One alert by id."""
        found = self._select("WHERE id = ?", (alert_id,))
        return found[0] if found else None

    def last_id(self) -> int:
        """The highest alert id used so far (0 when none)."""
        with self.store.query() as db:
            row = db.execute("SELECT COALESCE(MAX(id), 0) FROM alerts").fetchone()
        return int(row[0])

    def has_notice(self, key: AlertKey) -> bool:
        """Whether the notice of `key` was made already."""
        with self.store.query() as db:
            row = db.execute(
                "SELECT 1 FROM alerts WHERE kind = 'notice' AND rule = ? AND scope = ?",
                (key.rule, key.scope),
            ).fetchone()
        return row is not None

    def unannotated(self, limit: int = 100) -> list[Alert]:
        """Resolved alerts without their Grafana annotation yet, oldest first."""
        return self._select(
            "WHERE kind = 'alert' AND state = 'resolved' AND annotated = 0 ORDER BY id LIMIT ?",
            (limit,),
        )

    def mark_annotated(self, alert_id: int) -> None:
        """Record that Grafana has the alert's annotation."""
        with self.store.transaction() as db:
            db.execute("UPDATE alerts SET annotated = 1 WHERE id = ?", (alert_id,))

    def _select(self, where: str, params: tuple[Any, ...] = ()) -> list[Alert]:
        with self.store.query() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM alerts {where}", params).fetchall()
            found = [_alert(row) for row in rows]
            for alert in found:
                alert.notifications = _notifications(db, alert.id)
        return found


def _row(alert: Alert) -> tuple[Any, ...]:
    return (
        alert.id,
        alert.kind,
        alert.key.rule,
        alert.key.scope,
        alert.severity,
        json.dumps(list(alert.lines)),
        alert.message,
        _text(alert.since),
        _text(alert.raised_at),
        alert.state,
        json.dumps(dict(alert.values), sort_keys=True),
        json.dumps([_step(step) for step in alert.chain]),
        alert.next_step,
        json.dumps([_step(step) for step in alert.current]),
        _maybe_text(alert.next_repeat_at),
        _maybe_text(alert.acknowledged_at),
        alert.acknowledged_by,
        alert.acknowledged_via,
        _maybe_text(alert.resolved_at),
        alert.resolved_message,
    )


def _alert(row: sqlite3.Row | tuple[Any, ...]) -> Alert:
    (
        alert_id,
        kind,
        rule,
        scope,
        severity,
        lines,
        message,
        since,
        raised_at,
        state,
        details,
        chain,
        next_step,
        current,
        next_repeat_at,
        acknowledged_at,
        acknowledged_by,
        acknowledged_via,
        resolved_at,
        resolved_message,
    ) = row
    return Alert(
        id=alert_id,
        kind=cast(AlertKind, kind),
        key=AlertKey(cast(RuleName, rule), scope),
        severity=cast(Severity, severity),
        lines=tuple(json.loads(lines)),
        message=message,
        since=_time(since),
        raised_at=_time(raised_at),
        state=cast(AlertState, state),
        values=json.loads(details),
        chain=tuple(_unstep(item) for item in json.loads(chain)),
        next_step=next_step,
        current=tuple(_unstep(item) for item in json.loads(current)),
        next_repeat_at=_maybe_time(next_repeat_at),
        acknowledged_at=_maybe_time(acknowledged_at),
        acknowledged_by=acknowledged_by,
        acknowledged_via=cast(AckVia | None, acknowledged_via),
        resolved_at=_maybe_time(resolved_at),
        resolved_message=resolved_message,
    )


def _notifications(db: sqlite3.Connection, alert_id: int) -> list[Notification]:
    rows = db.execute(
        "SELECT message_id, person, level, reason, channel, sent_at, result, result_at,"
        " attempts, error FROM alert_notifications WHERE alert_id = ? ORDER BY seq",
        (alert_id,),
    ).fetchall()
    return [
        Notification(
            message_id=row[0],
            person=row[1],
            level=row[2],
            reason=cast(Reason, row[3]),
            channel=row[4],
            sent_at=_time(row[5]),
            result=cast(Result, row[6]),
            result_at=_maybe_time(row[7]),
            attempts=row[8],
            error=row[9],
        )
        for row in rows
    ]


def _notification_row(alert_id: int, seq: int, n: Notification) -> tuple[Any, ...]:
    return (
        alert_id,
        seq,
        n.message_id,
        n.person,
        n.level,
        n.reason,
        n.channel,
        _text(n.sent_at),
        n.result,
        _maybe_text(n.result_at),
        n.attempts,
        n.error,
    )


def _step(step: Step) -> dict[str, str]:
    return {"level": step.level, "person": step.person, "due_at": _text(step.due_at)}


def _unstep(item: dict[str, str]) -> Step:
    return Step(item["level"], item["person"], _time(item["due_at"]))


def _text(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _maybe_text(when: dt.datetime | None) -> str | None:
    return None if when is None else _text(when)


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _maybe_time(text: str | None) -> dt.datetime | None:
    return None if text is None else _time(text)
