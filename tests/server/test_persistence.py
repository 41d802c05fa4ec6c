"""Shift counts survive a server restart (real Mosquitto, the same state_dir), and finished
shifts are kept as the line's shift history."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx

from server.app import Server
from taktline.config import ServerConfig
from tests.server.conftest import (
    AUTH,
    BERLIN,
    FA1,
    PinnedClock,
    Publish,
    eventually,
    publish_counter,
)


async def fa1_when(server: Server, check: Any) -> dict[str, Any]:
    async def state() -> dict[str, Any] | None:
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
            body: dict[str, Any] = (await http.get("/api/lines/fa1")).json()
        return body if check(body) else None

    result: dict[str, Any] = await eventually(state)
    return result


async def history(server: Server, line: str = "fa1", **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        return await http.get(f"/api/lines/{line}/shifts", params=params)


async def test_a_restart_during_the_shift_keeps_the_shift_count(
    token_config: ServerConfig, clock: PinnedClock, publish: Publish
) -> None:
    async with Server(token_config, clock=clock) as first:
        await publish_counter(publish, FA1, 16_250_300, 1, clock.now - dt.timedelta(minutes=30))
        await publish_counter(publish, FA1, 16_250_320, 20, clock.now)
        await fa1_when(first, lambda s: s["shift_count"] == 21)
        async with httpx.AsyncClient(base_url=first.url, timeout=5) as http:
            correction = {"counter": "eol/passed", "delta": 2, "reason": "recount", "by": "Ana"}
            response = await http.post("/api/lines/fa1/corrections", json=correction, headers=AUTH)
        assert response.status_code == 201
    # while the server is down the line goes on; the broker keeps only the latest message
    clock.advance(minutes=10)
    await publish_counter(publish, FA1, 16_250_330, 10, clock.now)
    async with Server(token_config, clock=clock) as second:
        state = await fa1_when(second, lambda s: s["total"] == 16_250_330)
        assert (state["shift_count"], state["corrections"]) == (33, 2)  # 31 units + 2 corrected

        clock.now = dt.datetime(2026, 11, 25, 14, 0, 30, tzinfo=BERLIN).astimezone(dt.UTC)
        late = await fa1_when(second, lambda s: s["shift"] == "late")
        shifts = await history(second)
    assert (late["shift_count"], late["corrections"], late["total"]) == (0, 0, 16_250_330)
    assert shifts.status_code == 200
    early = shifts.json()
    assert len(early) == 1
    assert (early[0]["line"], early[0]["shift"], early[0]["count"], early[0]["target"]) == (
        "fa1",
        "early",
        33,
        435,
    )
    assert (early[0]["corrections"], early[0]["complete"]) == (2, True)
    assert dt.datetime.fromisoformat(early[0]["start"]) == dt.datetime(
        2026, 11, 25, 6, 0, tzinfo=BERLIN
    )
    assert dt.datetime.fromisoformat(early[0]["end"]) == dt.datetime(
        2026, 11, 25, 14, 0, tzinfo=BERLIN
    )


async def test_a_shift_that_ended_while_the_server_was_down_is_kept_as_incomplete(
    server_config: ServerConfig, clock: PinnedClock, publish: Publish
) -> None:
    async with Server(server_config, clock=clock) as first:
        await publish_counter(publish, FA1, 16_250_500, 1, clock.now - dt.timedelta(minutes=5))
        await publish_counter(publish, FA1, 16_250_540, 40, clock.now)
        await fa1_when(first, lambda s: s["shift_count"] == 41)
    clock.now = dt.datetime(2026, 11, 25, 23, 0, tzinfo=BERLIN).astimezone(dt.UTC)
    async with Server(server_config, clock=clock) as second:
        night = await fa1_when(second, lambda s: s["total"] == 16_250_540)
        shifts = (await history(second, limit=5)).json()
    assert (night["shift"], night["shift_count"]) == ("night", 0)
    assert [(s["shift"], s["count"], s["complete"]) for s in shifts] == [("early", 41, False)]


async def test_shift_history_answers_unknown_lines_and_bad_limits_clearly(
    server_config: ServerConfig, clock: PinnedClock
) -> None:
    async with Server(server_config, clock=clock) as server:
        empty = await history(server, limit=3)
        unknown = await history(server, line="fa9")
        zero = await history(server, limit=0)
        text = await history(server, limit="many")
    assert (empty.status_code, empty.json()) == (200, [])
    assert unknown.status_code == 404
    assert unknown.json() == {
        "error": "unknown_line",
        "message": "no line 'fa9' in the plant; known lines: fa1, fa2, paint1",
        "known": ["fa1", "fa2", "paint1"],
    }
    for response in (zero, text):
        assert response.status_code == 422
        assert response.json()["error"] == "invalid_request"
        assert response.json()["message"].startswith("query.limit")
