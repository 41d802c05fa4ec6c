"""Line screens and the plant overview: static files, no build step, no login."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from server.state import LineBoard

STATIC = Path(__file__).resolve().parent / "static"


def router(board: LineBoard) -> APIRouter:
    """`GET /` (overview) and `GET /lines/{line}` (one line's screen)."""
    routes = APIRouter(tags=["screens"])

    @routes.get("/", summary="Plant overview: one live tile per line", response_class=FileResponse)
    async def overview() -> FileResponse:
        return FileResponse(STATIC / "overview.html")

    @routes.get(
        "/lines/{line}", summary="The line screen", response_class=HTMLResponse, response_model=None
    )
    async def line_screen(line: str) -> FileResponse | HTMLResponse:
        if board.snapshot(line) is None:
            links = "".join(
                f'<li><a href="/lines/{known}">{known}</a></li>' for known in board.line_ids()
            )
            return HTMLResponse(
                "<!doctype html><title>Unknown line</title>"
                f"<h1>No line with this id</h1><ul>{links}</ul>",
                status_code=404,
            )
        return FileResponse(STATIC / "line.html")

    return routes
