"""Alerts in the server's state store (SQLite, or PostgreSQL shared by replicas), next to the
shift state.

Tables: `alerts` (one row per alert or milestone notice: its key, state, escalation plan as
JSON, acknowledgement, resolution, and whether Grafana has its annotation) and
`alert_notifications` (one row per message and channel: who, which level, why, when, and how
the channel answered). A partial unique index keeps one open alert per key (rule, scope) and
one notice per key. Times are ISO 8601 UTC text.

An alert is written whole (`save`: an upsert of its row and its notification rows), so a
failed write is retried by writing it again; the upsert never takes back an acknowledgement
that is stored already (another replica may have written it: `acknowledge`). An
acknowledgement is written with its audit entry in one transaction. Methods are blocking;
async code calls them through `asyncio.to_thread`. Database errors surface as
`server.database.StoreError`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)

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

_OPEN = "(" + ", ".join(f"'{state}'" for state in OPEN_STATES) + ")"
_CLOSED = "('resolved', 'notice')"

METADATA = MetaData()

_ALERTS = Table(
    "alerts",
    METADATA,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    Column("kind", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("lines", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("since", Text, nullable=False),
    Column("raised_at", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("details", Text, nullable=False),
    Column("chain", Text, nullable=False),
    Column("next_step", Integer, nullable=False),
    Column("current", Text, nullable=False),
    Column("next_repeat_at", Text),
    Column("acknowledged_at", Text),
    Column("acknowledged_by", Text),
    Column("acknowledged_via", Text),
    Column("resolved_at", Text),
    Column("resolved_message", Text),
    Column("annotated", Integer, nullable=False, server_default=text("0")),
)
Index(
    "alerts_open_key",
    _ALERTS.c.rule,
    _ALERTS.c.scope,
    unique=True,
    sqlite_where=text(f"state IN {_OPEN}"),
    postgresql_where=text(f"state IN {_OPEN}"),
)
Index(
    "alerts_notice_key",
    _ALERTS.c.rule,
    _ALERTS.c.scope,
    unique=True,
    sqlite_where=text("kind = 'notice'"),
    postgresql_where=text("kind = 'notice'"),
)
Table(
    "alert_notifications",
    METADATA,
    Column("alert_id", BigInteger, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("message_id", Text, nullable=False),
    Column("person", Text, nullable=False),
    Column("level", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("sent_at", Text, nullable=False),
    Column("result", Text, nullable=False),
    Column("result_at", Text),
    Column("attempts", Integer, nullable=False),
    Column("error", Text),
    PrimaryKeyConstraint("alert_id", "seq"),
)

_COLUMNS = (
    "id, kind, rule, scope, severity, lines, message, since, raised_at, state, details, chain,"
    " next_step, current, next_repeat_at, acknowledged_at, acknowledged_by, acknowledged_via,"
    " resolved_at, resolved_message"
)
_NAMES = [name.strip() for name in _COLUMNS.split(",")]
_ACKNOWLEDGEMENT = ("acknowledged_at", "acknowledged_by", "acknowledged_via")
_KEEP_STORED_ACK = "alerts.state = 'acknowledged' AND excluded.state IN ('firing', 'notified')"
"""An upsert that would take back a stored acknowledgement (made by another replica)."""


def _update(name: str) -> str:
    if name == "state":
        return f"state = CASE WHEN {_KEEP_STORED_ACK} THEN alerts.state ELSE excluded.state END"
    if name in _ACKNOWLEDGEMENT:
        return f"{name} = COALESCE(alerts.{name}, excluded.{name})"
    if name == "next_repeat_at":
        return (
            f"next_repeat_at = CASE WHEN {_KEEP_STORED_ACK} THEN NULL"
            " ELSE excluded.next_repeat_at END"
        )
    return f"{name} = excluded.{name}"


_UPSERT = text(
    f"INSERT INTO alerts ({_COLUMNS}) VALUES ({', '.join(f':{name}' for name in _NAMES)})"
    " ON CONFLICT (id) DO UPDATE SET " + ", ".join(_update(name) for name in _NAMES[1:])
)
_NOTIFICATION_COLUMNS = (
    "alert_id, seq, message_id, person, level, reason, channel, sent_at, result, result_at,"
    " attempts, error"
)
_NOTIFICATION_NAMES = [name.strip() for name in _NOTIFICATION_COLUMNS.split(",")]
_SAVE_NOTIFICATION = text(
    f"INSERT INTO alert_notifications ({_NOTIFICATION_COLUMNS})"
    f" VALUES ({', '.join(f':{name}' for name in _NOTIFICATION_NAMES)})"
    " ON CONFLICT (alert_id, seq) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _NOTIFICATION_NAMES[2:])
)


class AlertStore:
    """The alert tables of one state store (made when missing)."""

    def __init__(self, store: StateStore):
        self.store = store
        store.database.create(METADATA)

    def save(self, alerts: Iterable[Alert], audit: AuditEntry | None = None) -> int | None:
        """Write alerts whole (and an audit entry) in one transaction; returns the entry's id."""
        with self.store.transaction() as db:
            for alert in alerts:
                db.execute(_UPSERT, _row(alert))
                rows = [
                    _notification_row(alert.id, seq, n) for seq, n in enumerate(alert.notifications)
                ]
                if rows:
                    db.execute(_SAVE_NOTIFICATION, rows)
            return None if audit is None else insert_audit(db, audit)

    def save_notification(self, alert_id: int, seq: int, notification: Notification) -> None:
        """Write one notification of an alert (a result that came after it was resolved)."""
        with self.store.transaction() as db:
            db.execute(_SAVE_NOTIFICATION, _notification_row(alert_id, seq, notification))

    def acknowledge(
        self, alert_id: int, by: str, via: AckVia, at: dt.datetime, audit: AuditEntry | None
    ) -> tuple[Alert | None, bool, int | None]:
        """Acknowledge an open, unacknowledged alert in the store (with its audit entry, in one
        transaction): what a replica that does not run the alerts does. Returns the alert as
        stored afterwards (None: no such alert), whether this call acknowledged it (False: it
        is closed or was acknowledged already) and the audit entry's id."""
        with self.store.transaction() as db:
            changed = db.execute(
                text(
                    "UPDATE alerts SET state = 'acknowledged', acknowledged_at = :at,"
                    " acknowledged_by = :by, acknowledged_via = :via, next_repeat_at = NULL"
                    " WHERE id = :id AND state IN ('firing', 'notified')"
                ),
                {"id": alert_id, "at": _text(at), "by": by, "via": via},
            ).rowcount
            audit_id = insert_audit(db, audit) if changed and audit is not None else None
            found = _select(db, "WHERE id = :id", {"id": alert_id})
        return (found[0] if found else None), changed == 1, audit_id

    def acknowledged(self, alert_ids: Iterable[int]) -> list[Alert]:
        """Those of `alert_ids` that are stored as acknowledged (by any replica)."""
        wanted = set(alert_ids)
        if not wanted:
            return []
        found = self._select("WHERE state = 'acknowledged' ORDER BY id")
        return [alert for alert in found if alert.id in wanted]

    def interrupt_pending(self) -> list[tuple[int, int]]:
        """Mark notifications still waiting for a channel's answer as interrupted (when taking
        the alerts over: the queues of the process that sent them are gone); returns them as
        (alert id, seq)."""
        with self.store.transaction() as db:
            return [
                (int(row[0]), int(row[1]))
                for row in db.execute(
                    text(
                        "UPDATE alert_notifications SET result = 'interrupted'"
                        " WHERE result = 'pending' RETURNING alert_id, seq"
                    )
                ).all()
            ]

    def open_alerts(self) -> list[Alert]:
        """Every alert firing, notified or acknowledged, oldest first."""
        return self._select(f"WHERE state IN {_OPEN} ORDER BY id")

    def history(self, limit: int) -> list[Alert]:
        """Resolved alerts and notices, the latest resolved first."""
        return self._select(
            f"WHERE state IN {_CLOSED} ORDER BY COALESCE(resolved_at, raised_at) DESC, id DESC"
            " LIMIT :limit",
            {"limit": limit},
        )

    def get(self, alert_id: int) -> Alert | None:
        """One alert by id."""
        found = self._select("WHERE id = :id", {"id": alert_id})
        return found[0] if found else None

    def last_id(self) -> int:
        """The highest alert id used so far (0 when none)."""
        with self.store.query() as db:
            return int(db.execute(text("SELECT COALESCE(MAX(id), 0) FROM alerts")).scalar_one())

    def has_notice(self, key: AlertKey) -> bool:
        """Whether the notice of `key` was made already."""
        with self.store.query() as db:
            row = db.execute(
                text(
                    "SELECT 1 FROM alerts WHERE kind = 'notice' AND rule = :rule AND scope = :scope"
                ),
                {"rule": key.rule, "scope": key.scope},
            ).first()
        return row is not None

    def unannotated(self, limit: int = 100) -> list[Alert]:
        """Resolved alerts without their Grafana annotation yet, oldest first."""
        return self._select(
            "WHERE kind = 'alert' AND state = 'resolved' AND annotated = 0 ORDER BY id"
            " LIMIT :limit",
            {"limit": limit},
        )

    def mark_annotated(self, alert_id: int) -> None:
        """Record that Grafana has the alert's annotation."""
        with self.store.transaction() as db:
            db.execute(text("UPDATE alerts SET annotated = 1 WHERE id = :id"), {"id": alert_id})

    def _select(self, where: str, params: dict[str, Any] | None = None) -> list[Alert]:
        with self.store.query() as db:
            return _select(db, where, params or {})


def _select(db: Connection, where: str, params: dict[str, Any] | None = None) -> list[Alert]:
    rows = db.execute(text(f"SELECT {_COLUMNS} FROM alerts {where}"), params or {}).all()
    found = [_alert(row) for row in rows]
    for alert in found:
        alert.notifications = _notifications(db, alert.id)
    return found


def _row(alert: Alert) -> dict[str, Any]:
    values = (
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
    return dict(zip(_NAMES, values, strict=True))


def _alert(row: Sequence[Any]) -> Alert:
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


def _notifications(db: Connection, alert_id: int) -> list[Notification]:
    rows = db.execute(
        text(
            "SELECT message_id, person, level, reason, channel, sent_at, result, result_at,"
            " attempts, error FROM alert_notifications WHERE alert_id = :id ORDER BY seq"
        ),
        {"id": alert_id},
    ).all()
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


def _notification_row(alert_id: int, seq: int, n: Notification) -> dict[str, Any]:
    values = (
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
    return dict(zip(_NOTIFICATION_NAMES, values, strict=True))


def _step(step: Step) -> dict[str, str]:
    return {"level": step.level, "person": step.person, "due_at": _text(step.due_at)}


def _unstep(item: dict[str, str]) -> Step:
    return Step(item["level"], item["person"], _time(item["due_at"]))


def _text(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _maybe_text(when: dt.datetime | None) -> str | None:
    return None if when is None else _text(when)


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def _maybe_time(value: str | None) -> dt.datetime | None:
    return None if value is None else _time(value)
