"""JSON API: the state of every line and of one line, and a line's shift history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from server.database import StoreError
from server.errors import ApiError
from server.flusher import Persister
from server.persisted import FinishedShift
from server.state import LineBoard, LineSnapshot

Responses = dict[int | str, dict[str, Any]]

UNKNOWN_LINE: Responses = {404: {"description": "No such line; the body names the known lines."}}
STORE_DOWN: Responses = {503: {"description": "The state store cannot be read or written."}}


def router(board: LineBoard, persister: Persister) -> APIRouter:
    """`GET /api/lines`, `GET /api/lines/{line}` and `GET /api/lines/{line}/shifts`."""
    routes = APIRouter(tags=["lines"])

    @routes.get("/api/lines", summary="Every line's state now")
    async def lines() -> list[LineSnapshot]:
        return board.snapshots()

    @routes.get(
        "/api/lines/{line}",
        summary="One line's state now",
        response_model=LineSnapshot,
        responses=UNKNOWN_LINE,
    )
    async def line(line: str) -> LineSnapshot | JSONResponse:
        snapshot = board.snapshot(line)
        return snapshot if snapshot is not None else unknown_line(board, line)

    @routes.get(
        "/api/lines/{line}/shifts",
        summary="A line's finished shifts, newest first: count against target",
        responses={**UNKNOWN_LINE, **STORE_DOWN},
    )
    async def shifts(
        line: str, limit: Annotated[int, Query(ge=1, le=1000)] = 20
    ) -> list[FinishedShift]:
        if board.snapshot(line) is None:
            raise unknown_line_error(board, line)
        try:
            await persister.flush()  # a shift that just ended is in the answer
            return await persister.read(persister.store.history, line, limit)
        except StoreError as exc:
            raise ApiError(503, "store_unavailable", str(exc)) from None

    return routes


def unknown_line_error(board: LineBoard, line: str) -> ApiError:
    """404 naming the known lines."""
    known = board.line_ids()
    return ApiError(
        404,
        "unknown_line",
        f"no line '{line}' in the plant; known lines: {', '.join(known)}",
        extra={"known": known},
    )


def unknown_line(board: LineBoard, line: str) -> JSONResponse:
    """404 with a JSON body naming the known lines."""
    return unknown_line_error(board, line).response()
