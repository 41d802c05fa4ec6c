"""The acknowledge link of an alert message: `GET` shows, `POST` acknowledges.

`GET /alerts/ack/{token}` only shows a small page (the alert, its state, a button): mail
scanners and link previews open links, so opening one must change nothing. The button POSTs
to the same address, which acknowledges the alert as the person the token names; the signed,
expiring token is the credential (no bearer token). The acknowledgement is audited like the
API's (`GET /api/audit`, endpoint `POST /alerts/ack/{token}`, the token itself left out).

Answers are HTML for people on a phone: 200 (shown, or acknowledged), 400 (not a valid link),
410 (expired), 404 (no such alert), 409 (resolved, or acknowledged already, saying by whom),
503 (the store cannot be written: nothing changed). They are not cached, not indexed, and send
no referrer (the token is in the address).
"""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from server.alerts.ack_tokens import AckTokens, TokenExpired, TokenInvalid
from server.alerts.lifecycle import AlertClosed, AlertEngine, AlreadyAcknowledged, UnknownAlert
from server.alerts.messages import line_names, local_time
from server.alerts.records import Alert
from server.alerts.routing import name_of
from server.database import StoreError
from server.persisted import AuditEntry
from server.state import Clock
from taktline.model.plant import Plant

ENDPOINT = "POST /alerts/ack/{token}"
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;"
    "background:#0a0e13;color:#eef2f6;line-height:1.4}"
    ".card{background:#121922;border-radius:.6rem;padding:1rem 1.2rem}"
    ".muted{color:#8b98a8}.critical{color:#ff5a5a}.warning{color:#ffb23e}.info{color:#c9d3de}"
    "button{font-size:1.3rem;padding:.8rem 1.6rem;border:0;border-radius:.5rem;"
    "background:#2fd67b;color:#06210f;font-weight:700;width:100%;margin-top:1rem}"
)


class _Refused(Exception):
    def __init__(self, status: int, heading: str, text: str):
        super().__init__(text)
        self.page = _page(heading, f"<p>{html.escape(text)}</p>", status)


def router(engine: AlertEngine, tokens: AckTokens, lifetime_s: float, clock: Clock) -> APIRouter:
    """`GET /alerts/ack/{token}` (a page with a button) and `POST /alerts/ack/{token}`."""
    routes = APIRouter(tags=["alerts"])
    plant = engine.plant

    async def resolve(token: str) -> tuple[Alert, str]:
        try:
            ref, person = tokens.verify(token, lifetime_s)
        except TokenExpired:
            raise _Refused(
                410, "Link expired", "This acknowledgement link has expired. Use a newer message."
            ) from None
        except TokenInvalid:
            raise _Refused(
                400, "Invalid link", "This is not a valid acknowledgement link."
            ) from None
        alert_id = ref.partition("@")[0]
        try:
            alert = await engine.find(int(alert_id)) if alert_id.isdigit() else None
        except StoreError:
            raise _Refused(503, "Try again", "The server cannot read its alerts now.") from None
        if alert is None or alert.ref != ref:
            raise _Refused(404, "Unknown alert", f"There is no alert {alert_id}.")
        return alert, person

    @routes.get(
        "/alerts/ack/{token}",
        summary="The acknowledge link: a page with a button (opening it changes nothing)",
        response_class=HTMLResponse,
    )
    async def confirm(token: str) -> HTMLResponse:
        try:
            alert, person = await resolve(token)
        except _Refused as refused:
            return refused.page
        who = html.escape(name_of(plant, person))
        if alert.state in ("firing", "notified"):
            action = (
                f'<form method="post"><button type="submit">Acknowledge as {who}</button></form>'
                '<p class="muted">Acknowledging stops the escalation and the reminders.</p>'
            )
        else:
            action = _settled(plant, alert)
        return _page("Acknowledge alert", _summary(plant, alert) + action, 200)

    @routes.post(
        "/alerts/ack/{token}",
        summary="Acknowledge the alert as the person the link was sent to (audited)",
        response_class=HTMLResponse,
    )
    async def acknowledge(token: str, request: Request) -> HTMLResponse:
        try:
            alert, person = await resolve(token)
        except _Refused as refused:
            return refused.page
        entry = AuditEntry(
            at=clock(),
            endpoint=ENDPOINT,
            line=alert.lines[0] if alert.lines else "",
            body={"alert": alert.id, "person": person},
            by=person,
            client=request.client.host if request.client else "unknown",
        )
        try:
            done = await engine.acknowledge(alert.id, person, "link", entry)
        except (AlertClosed, AlreadyAcknowledged) as exc:
            return _page(
                "Nothing to do", _summary(plant, exc.alert) + _settled(plant, exc.alert), 409
            )
        except UnknownAlert:
            return _page("Unknown alert", f"<p>There is no alert {alert.id}.</p>", 404)
        except StoreError:
            return _page("Not saved", "<p>The server cannot save it now; try again.</p>", 503)
        thanks = f"<p>Acknowledged by {html.escape(name_of(plant, person))}. Thank you.</p>"
        return _page("Acknowledged", _summary(plant, done.alert) + thanks, 200)

    return routes


def _summary(plant: Plant, alert: Alert) -> str:
    since = local_time(plant, alert.lines, alert.since)
    parts = [f'<p class="{alert.severity}"><b>{html.escape(alert.message)}</b></p>']
    if alert.lines:
        parts.append(f"<p>Line: {html.escape(line_names(plant, alert.lines))}</p>")
    parts.append(
        f'<p class="muted">Alert {alert.id} · {html.escape(alert.key.rule)} · {alert.severity}'
        f" · since {html.escape(since)}</p>"
    )
    return "".join(parts)


def _settled(plant: Plant, alert: Alert) -> str:
    """Why there is nothing to acknowledge (as an HTML paragraph)."""
    if alert.state == "acknowledged" and alert.acknowledged_at is not None:
        who = name_of(plant, alert.acknowledged_by or "?")
        when = local_time(plant, alert.lines, alert.acknowledged_at)
        text = f"Acknowledged already by {who} at {when}."
    elif alert.state == "resolved" and alert.resolved_at is not None:
        when = local_time(plant, alert.lines, alert.resolved_at)
        text = f"Resolved at {when}: nothing to acknowledge."
    else:
        text = "A notice: there is nothing to acknowledge."
    return f"<p>{html.escape(text)}</p>"


def _page(heading: str, content: str, status: int) -> HTMLResponse:
    text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex, nofollow">'
        f"<title>{html.escape(heading)} · taktline</title><style>{_STYLE}</style></head>"
        f'<body><h1>{html.escape(heading)}</h1><div class="card">{content}</div></body></html>'
    )
    return HTMLResponse(text, status_code=status, headers=HEADERS)
