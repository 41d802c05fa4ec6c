"""Write endpoints: manual count corrections and stop acknowledgements, bearer-token guarded
and audited (`GET /api/audit`).

A correction is checked against the line state, added in the store with its audit entry in one
transaction (so replicas sharing the store all count it), then the line state takes the stored
corrections. An acknowledgement is applied to the line state, then stored with its audit entry;
if the store fails it is taken back. A store failure is answered 503, a correction for a shift
the store does not hold as running 409; bad requests change nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from server.api import UNKNOWN_LINE, Responses, unknown_line_error
from server.auth import BearerGuard
from server.database import StoreError
from server.errors import ApiError
from server.flusher import Persister
from server.persisted import AuditEntry
from server.state import LineBoard, Refused
from server.store import ShiftNotStored
from server.tracker import RefusalCode

log = logging.getLogger(__name__)

MAX_DELTA = 10_000
"""Largest correction in units, either way: a larger one is a typo, not a recount."""

REFUSAL_STATUS: dict[RefusalCode, int] = {
    "unknown_counter": 400,
    "no_shift": 409,
    "negative_count": 409,
    "not_stopped": 409,
}

GUARDED: Responses = {
    401: {"description": "Missing or wrong bearer token (WWW-Authenticate: Bearer)."},
    403: {"description": "Writes are disabled: no api_token configured."},
    422: {"description": "The body does not fit the schema; the message names the field."},
    503: {"description": "The state store cannot be written; nothing was changed."},
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class CorrectionRequest(_Body):
    """A manual correction of a counter's count in the current shift."""

    counter: StrictStr = Field(
        pattern=r"^[^/]+/[^/]+$", description="The line's counter: station/counter."
    )
    delta: StrictInt = Field(
        ge=-MAX_DELTA, le=MAX_DELTA, description="Units to add (negative: remove), not 0."
    )
    reason: StrictStr = Field(min_length=1, max_length=500, description="Why; kept in the audit.")
    by: StrictStr = Field(min_length=1, max_length=100, description="Who makes the correction.")

    @field_validator("delta")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("a correction of 0 changes nothing")
        return value


class AcknowledgementRequest(_Body):
    """An acknowledgement of the line's current stop."""

    note: StrictStr = Field(default="", max_length=500, description="What is being done.")
    by: StrictStr = Field(min_length=1, max_length=100, description="Who acknowledges.")


class CorrectionAccepted(BaseModel):
    """The correction as applied."""

    audit_id: int
    line: str
    counter: str
    delta: int
    shift: str
    shift_start: dt.datetime
    counter_corrections: int = Field(description="Sum of the counter's corrections this shift.")
    counter_shift_count: int = Field(description="The counter's shift count now.")
    shift_count: int = Field(description="The line's (output) shift count now.")


class AcknowledgementAccepted(BaseModel):
    """The acknowledgement as recorded."""

    audit_id: int
    line: str
    stopped_since: dt.datetime
    acknowledged_by: str
    acknowledged_at: dt.datetime


def router(
    board: LineBoard,
    persister: Persister,
    guard: BearerGuard,
    on_change: Callable[[Iterable[str]], None],
) -> APIRouter:
    """`POST /api/lines/{line}/corrections`, `POST /api/lines/{line}/acknowledgements`,
    `GET /api/audit`; `on_change(lines)` pushes the new state to the screens."""
    routes = APIRouter(tags=["writes"], dependencies=[Depends(guard)])

    @routes.post(
        "/api/lines/{line}/corrections",
        summary="Correct the current shift's count of a counter (audited)",
        status_code=201,
        responses={
            **UNKNOWN_LINE,
            **GUARDED,
            400: {"description": "The line has no such counter."},
            409: {
                "description": (
                    "No shift runs (or the store holds another one), or the count would become"
                    " negative."
                )
            },
        },
    )
    async def correction(
        line: str, body: CorrectionRequest, request: Request
    ) -> CorrectionAccepted:
        _known(board, line)
        try:
            path, window = board.check_correction(line, body.counter, body.delta)
        except Refused as exc:
            raise ApiError(REFUSAL_STATUS[exc.code], exc.code, exc.message) from None
        entry = _entry(board, request, "POST /api/lines/{line}/corrections", line, body)
        name = f"{path.station}/{path.counter}"
        try:
            audit_id = await persister.correct(line, window.start, name, body.delta, entry)
        except ShiftNotStored as exc:
            raise ApiError(409, "no_shift", str(exc)) from None
        except StoreError as exc:
            raise ApiError(503, "store_unavailable", f"not saved: {exc}") from None
        on_change([line])
        log.info(
            "line %s: %s corrected by %+d by %s (audit %d)",
            line,
            body.counter,
            body.delta,
            body.by,
            audit_id,
        )
        counter_count, counter_corrections = board.counter_counts(path)
        snapshot = board.snapshot(line)
        assert snapshot is not None
        return CorrectionAccepted(
            audit_id=audit_id,
            line=line,
            counter=body.counter,
            delta=body.delta,
            shift=window.name,
            shift_start=window.start,
            counter_corrections=counter_corrections,
            counter_shift_count=counter_count,
            shift_count=snapshot.shift_count,
        )

    @routes.post(
        "/api/lines/{line}/acknowledgements",
        summary="Acknowledge the line's current stop (audited)",
        status_code=201,
        responses={**UNKNOWN_LINE, **GUARDED, 409: {"description": "The line is not stopped."}},
    )
    async def acknowledgement(
        line: str, body: AcknowledgementRequest, request: Request
    ) -> AcknowledgementAccepted:
        _known(board, line)
        try:
            ack, previous = board.acknowledge(line, body.by)
        except Refused as exc:
            raise ApiError(REFUSAL_STATUS[exc.code], exc.code, exc.message) from None
        entry = _entry(board, request, "POST /api/lines/{line}/acknowledgements", line, body)
        try:
            audit_id = await persister.flush(entry)
        except StoreError as exc:
            board.undo_acknowledgement(line, previous)
            raise ApiError(503, "store_unavailable", f"not saved: {exc}") from None
        assert audit_id is not None
        on_change([line])
        log.info("line %s: stop acknowledged by %s (audit %d)", line, body.by, audit_id)
        return AcknowledgementAccepted(
            audit_id=audit_id,
            line=line,
            stopped_since=ack.stop_since,
            acknowledged_by=ack.by,
            acknowledged_at=ack.at,
        )

    @routes.get(
        "/api/audit",
        summary="The latest accepted writes, newest first",
        responses={
            401: GUARDED[401],
            403: GUARDED[403],
            503: {"description": "The state store cannot be read."},
        },
    )
    async def audit(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AuditEntry]:
        try:
            return await persister.read(persister.store.audit, limit)
        except StoreError as exc:
            raise ApiError(503, "store_unavailable", str(exc)) from None

    return routes


def _known(board: LineBoard, line: str) -> None:
    if board.snapshot(line) is None:
        raise unknown_line_error(board, line)


def _entry(
    board: LineBoard, request: Request, endpoint: str, line: str, body: BaseModel
) -> AuditEntry:
    body_json: dict[str, Any] = body.model_dump(mode="json")
    return AuditEntry(
        at=board.now(),
        endpoint=endpoint,
        line=line,
        body=body_json,
        by=str(body_json["by"]),
        client=request.client.host if request.client else "unknown",
    )
