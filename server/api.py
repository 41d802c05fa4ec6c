"""JSON API: the state of every line, and of one line."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from server.state import LineBoard, LineSnapshot


def router(board: LineBoard) -> APIRouter:
    """`GET /api/lines` and `GET /api/lines/{line}`."""
    routes = APIRouter(tags=["lines"])

    @routes.get("/api/lines", summary="Every line's state now")
    async def lines() -> list[LineSnapshot]:
        return board.snapshots()

    @routes.get(
        "/api/lines/{line}",
        summary="One line's state now",
        response_model=LineSnapshot,
        responses={404: {"description": "No such line; the body names the known lines."}},
    )
    async def line(line: str) -> LineSnapshot | JSONResponse:
        snapshot = board.snapshot(line)
        return snapshot if snapshot is not None else unknown_line(board, line)

    return routes


def unknown_line(board: LineBoard, line: str) -> JSONResponse:
    """404 with a JSON body naming the known lines."""
    known = board.line_ids()
    return JSONResponse(
        status_code=404,
        content={
            "error": "unknown_line",
            "message": f"no line '{line}' in the plant; known lines: {', '.join(known)}",
            "known": known,
        },
    )
