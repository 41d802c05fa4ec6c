"""Alerts as the API and the line screens show them (JSON shapes; fields are only ever added)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from server.alerts.records import AckVia, Alert, AlertKind, AlertState, Reason, Result
from server.alerts.routing import name_of
from server.alerts.transitions import Value
from server.snapshot import LineAlert
from taktline.model.alerts import Severity
from taktline.model.plant import Plant


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class StepView(_View):
    """One person of the escalation plan."""

    level: str
    person: str
    name: str
    due_at: dt.datetime
    alerted: bool = Field(description="Whether this step's time came while unacknowledged.")


class NotificationView(_View):
    """One message to one person on one channel, and how the channel answered."""

    person: str
    name: str
    level: str
    reason: Reason
    channel: str = Field(description="The channel, its secrets masked.")
    sent_at: dt.datetime
    result: Result
    result_at: dt.datetime | None
    attempts: int
    error: str | None


class AlertView(_View):
    """One alert (or milestone notice) with its escalation plan and notifications."""

    id: int
    kind: AlertKind
    rule: str
    scope: str
    severity: Severity
    lines: list[str]
    message: str
    values: dict[str, Value]
    since: dt.datetime = Field(description="When the condition began.")
    raised_at: dt.datetime
    state: AlertState
    escalation: list[StepView]
    next_escalation_at: dt.datetime | None
    next_repeat_at: dt.datetime | None
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None = Field(description="A person id (link) or the API's `by`.")
    acknowledged_by_name: str | None
    acknowledged_via: AckVia | None
    resolved_at: dt.datetime | None
    resolved_message: str | None
    notifications: list[NotificationView]


def alert_view(plant: Plant, alert: Alert) -> AlertView:
    """The API's view of an alert."""
    return AlertView(
        id=alert.id,
        kind=alert.kind,
        rule=alert.key.rule,
        scope=alert.key.scope,
        severity=alert.severity,
        lines=list(alert.lines),
        message=alert.message,
        values=dict(alert.values),
        since=alert.since,
        raised_at=alert.raised_at,
        state=alert.state,
        escalation=[
            StepView(
                level=step.level,
                person=step.person,
                name=name_of(plant, step.person),
                due_at=step.due_at,
                alerted=index < alert.next_step,
            )
            for index, step in enumerate(alert.chain)
        ],
        next_escalation_at=alert.next_escalation_at,
        next_repeat_at=alert.next_repeat_at,
        acknowledged_at=alert.acknowledged_at,
        acknowledged_by=alert.acknowledged_by,
        acknowledged_by_name=(
            name_of(plant, alert.acknowledged_by) if alert.acknowledged_by is not None else None
        ),
        acknowledged_via=alert.acknowledged_via,
        resolved_at=alert.resolved_at,
        resolved_message=alert.resolved_message,
        notifications=[
            NotificationView(
                person=n.person,
                name=name_of(plant, n.person),
                level=n.level,
                reason=n.reason,
                channel=n.channel,
                sent_at=n.sent_at,
                result=n.result,
                result_at=n.result_at,
                attempts=n.attempts,
                error=n.error,
            )
            for n in alert.notifications
        ],
    )


def line_alert(plant: Plant, alert: Alert) -> LineAlert:
    """What a line screen shows of an open alert."""
    assert alert.state in ("firing", "notified", "acknowledged")
    return LineAlert(
        id=alert.id,
        rule=alert.key.rule,
        severity=alert.severity,
        message=alert.message,
        raised_at=alert.raised_at,
        state=alert.state,
        notified=[name_of(plant, person) for person in alert.notified()],
        acknowledged_by=(
            name_of(plant, alert.acknowledged_by) if alert.acknowledged_by is not None else None
        ),
        acknowledged_at=alert.acknowledged_at,
    )
