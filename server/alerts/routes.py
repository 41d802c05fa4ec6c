"""JSON API of alerts: the open ones, history, one alert, and acknowledgement (bearer token,
audited like the other writes, `GET /api/audit`)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from server.alerts.lifecycle import (
    AlertClosed,
    AlertEngine,
    AlreadyAcknowledged,
    UnknownAlert,
)
from server.alerts.records import Alert
from server.alerts.views import AlertView, alert_view
from server.api import STORE_DOWN, Responses
from server.auth import BearerGuard
from server.database import StoreError
from server.errors import ApiError
from server.persisted import AuditEntry
from server.state import Clock
from server.writes import GUARDED

ACK_ENDPOINT = "POST /api/alerts/{id}/ack"
UNKNOWN_ALERT: Responses = {404: {"description": "No alert with this id."}}


class AlertAckRequest(BaseModel):
    """An acknowledgement of an open alert: who takes it on."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    by: StrictStr = Field(min_length=1, max_length=100, description="Who acknowledges.")
    note: StrictStr = Field(default="", max_length=500, description="What is being done.")


class AlertAckAccepted(BaseModel):
    """The acknowledgement as stored."""

    audit_id: int
    alert: AlertView


def router(engine: AlertEngine, guard: BearerGuard, clock: Clock) -> APIRouter:
    """`GET /api/alerts`, `GET /api/alerts/history`, `GET /api/alerts/{id}`,
    `POST /api/alerts/{id}/ack`."""
    routes = APIRouter(tags=["alerts"])
    plant = engine.plant

    @routes.get("/api/alerts", summary="Open alerts (firing, notified, acknowledged), oldest first")
    async def open_alerts() -> list[AlertView]:
        return [alert_view(plant, alert) for alert in engine.open_alerts()]

    @routes.get(
        "/api/alerts/history",
        summary="Resolved alerts and milestone notices, the latest first",
        responses=STORE_DOWN,
    )
    async def history(limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[AlertView]:
        try:
            found = await asyncio.to_thread(engine.store.history, limit)
        except StoreError as exc:
            raise ApiError(503, "store_unavailable", str(exc)) from None
        return [alert_view(plant, alert) for alert in found]

    @routes.get(
        "/api/alerts/{alert_id}",
        summary="One alert, open or from history",
        responses={**UNKNOWN_ALERT, **STORE_DOWN},
    )
    async def one(alert_id: int) -> AlertView:
        return alert_view(plant, await _find(engine, alert_id))

    @routes.post(
        "/api/alerts/{alert_id}/ack",
        summary="Acknowledge an open alert: stops its escalation and reminders (audited)",
        dependencies=[Depends(guard)],
        responses={
            **UNKNOWN_ALERT,
            **GUARDED,
            409: {"description": "The alert is resolved, or acknowledged already."},
        },
    )
    async def acknowledge(
        alert_id: int, body: AlertAckRequest, request: Request
    ) -> AlertAckAccepted:
        alert = await _find(engine, alert_id)
        entry = AuditEntry(
            at=clock(),
            endpoint=ACK_ENDPOINT,
            line=alert.lines[0] if alert.lines else "",
            body={"alert": alert_id, **body.model_dump(mode="json")},
            by=body.by,
            client=request.client.host if request.client else "unknown",
        )
        try:
            done = await engine.acknowledge(alert_id, body.by, "api", entry)
        except UnknownAlert as exc:
            raise ApiError(404, "unknown_alert", str(exc)) from None
        except AlertClosed as exc:
            raise ApiError(409, "alert_closed", f"{exc}: nothing to acknowledge") from None
        except AlreadyAcknowledged as exc:
            raise ApiError(409, "already_acknowledged", str(exc)) from None
        except StoreError as exc:
            raise ApiError(503, "store_unavailable", f"not saved: {exc}") from None
        assert done.audit_id is not None
        return AlertAckAccepted(audit_id=done.audit_id, alert=alert_view(plant, done.alert))

    return routes


async def _find(engine: AlertEngine, alert_id: int) -> Alert:
    try:
        alert = await engine.find(alert_id)
    except StoreError as exc:
        raise ApiError(503, "store_unavailable", str(exc)) from None
    if alert is None:
        raise ApiError(404, "unknown_alert", f"no alert {alert_id}")
    return alert
