"""The words of alert messages: a title (the mail's subject) and a plain-text body.

    [critical] Final assembly line 1 stopped: no unit for 5 min (takt 60 s)

    Final assembly line 1 stopped: no unit for 5 min (takt 60 s)

    Line: Final assembly line 1 (fa1)
    Since: 10:05 (Europe/Berlin) · alert 12 · line_stopped · critical
    You get this as: shift lead
    Line screen: https://taktline.plant.example/lines/fa1

The acknowledge link is added last by `Message.text()`. Times are local to the calendar of the
alert's first line (UTC for an alert on no line the plant knows).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from server.alerts.records import Alert, Reason, Step
from server.alerts.routing import name_of
from taktline.model.plant import Plant

_PREFIX: dict[Reason, str] = {
    "alert": "",
    "escalation": "Not acknowledged: ",
    "repeat": "Reminder: ",
    "acknowledged": "",
    "resolved": "",
    "notice": "",
}


def title(alert: Alert, reason: Reason) -> str:
    """The subject line: severity (or `acknowledged`, `resolved`) in brackets, then what
    happened."""
    tag = reason if reason in ("acknowledged", "resolved") else alert.severity
    return f"[{tag}] {_PREFIX[reason]}{alert.message}"


def body(plant: Plant, alert: Alert, reason: Reason, step: Step, public_url: str | None) -> str:
    """The text for `step`'s person."""
    zone = _zone(plant, alert.lines)
    lines = [alert.message, ""]
    if alert.lines:
        lines.append(f"Line: {line_names(plant, alert.lines)}")
    label = "When" if alert.kind == "notice" else "Since"
    lines.append(
        f"{label}: {_local(alert.since, zone)} · alert {alert.id} · {alert.key.rule}"
        f" · {alert.severity}"
    )
    if reason not in ("acknowledged", "resolved"):
        lines.append(f"You get this as: {step.level}")
    if reason == "escalation":
        minutes = round((step.due_at - alert.raised_at).total_seconds() / 60)
        earlier = [s for s in alert.chain if s.due_at < step.due_at]
        who = ", ".join(f"{name_of(plant, s.person)} ({s.level})" for s in earlier)
        lines.append(f"Not acknowledged within {minutes} min" + (f" by {who}" if who else ""))
    if reason == "acknowledged" and alert.acknowledged_by is not None:
        who = name_of(plant, alert.acknowledged_by)
        when = _local(alert.acknowledged_at or alert.raised_at, zone)
        lines.append(f"Acknowledged by {who} at {when}: nobody else needs to act on it.")
    if reason == "resolved":
        lines.append(f"Resolved: {_local(alert.resolved_at or alert.raised_at, zone)}")
        if alert.resolved_message:
            lines.append(alert.resolved_message)
        if alert.acknowledged_by is not None and alert.acknowledged_at is not None:
            who = name_of(plant, alert.acknowledged_by)
            lines.append(f"Acknowledged by {who} at {_local(alert.acknowledged_at, zone)}")
        else:
            lines.append("Nobody acknowledged it.")
    if public_url is not None and alert.lines:
        lines.append(f"Line screen: {public_url.rstrip('/')}/lines/{alert.lines[0]}")
    return "\n".join(lines)


def local_time(plant: Plant, lines: tuple[str, ...], when: dt.datetime) -> str:
    """`when` in the time zone of the first of `lines` the plant knows, for people."""
    return _local(when, _zone(plant, lines))


def line_names(plant: Plant, lines: tuple[str, ...]) -> str:
    """The lines by name and id, for people."""
    return ", ".join(_line_name(plant, line) for line in lines)


def _line_name(plant: Plant, line_id: str) -> str:
    placed = plant.line(line_id)
    return f"{placed.line.name} ({line_id})" if placed is not None else line_id


def _zone(plant: Plant, lines: tuple[str, ...]) -> zoneinfo.ZoneInfo:
    for line_id in lines:
        placed = plant.line(line_id)
        if placed is not None:
            return plant.shift_calendars[placed.line.shift_calendar].zone
    return zoneinfo.ZoneInfo("UTC")


def _local(when: dt.datetime, zone: zoneinfo.ZoneInfo) -> str:
    return f"{when.astimezone(zone):%Y-%m-%d %H:%M} ({zone.key})"
