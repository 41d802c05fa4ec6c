"""Server-sent events: the current state first, a new state after a new message, heartbeats."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from server.app import Server
from taktline.config import ServerConfig
from tests.server.conftest import FA1, FA2, PinnedClock, Publish, publish_counter


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """(event, parsed data) pairs from a text/event-stream response."""
    event, data = "message", ""
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            event = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            data += line.partition(":")[2].strip()
        elif not line and data:
            yield event, json.loads(data)
            event, data = "message", ""


async def next_line_state(events: AsyncIterator[tuple[str, Any]], **match: Any) -> Any:
    async for event, data in events:
        if event == "line" and all(data.get(k) == v for k, v in match.items()):
            return data
    raise AssertionError("stream ended")


async def test_line_stream_pushes_a_new_state_after_a_new_message(
    server_config: ServerConfig, clock: PinnedClock, publish: Publish
) -> None:
    await publish_counter(publish, FA1, 16_250_600, 1, clock.now)
    async with (
        Server(server_config, clock=clock) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        http.stream("GET", "/api/lines/fa1/events") as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
        async with asyncio.timeout(15):
            await next_line_state(events, line="fa1", total=16_250_600)
            await publish_counter(publish, FA1, 16_250_605, 5, clock.now)
            pushed = await next_line_state(events, total=16_250_605)
            assert pushed["shift_count"] == 6
            async for event, data in events:  # quiet now: heartbeats keep the screen fresh
                if event == "heartbeat":
                    assert "now" in data
                    break
        assert server.hub.clients == 1


async def test_plant_stream_carries_every_line(
    server_config: ServerConfig, clock: PinnedClock, publish: Publish
) -> None:
    async with (
        Server(server_config, clock=clock) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        http.stream("GET", "/api/events") as response,
    ):
        events = sse_events(response)
        async with asyncio.timeout(15):
            seen = set()
            async for event, data in events:
                if event == "line":
                    seen.add(data["line"])
                if seen == {"fa1", "fa2", "paint1"}:
                    break
            await publish_counter(publish, FA2, 13_749_800, 2, clock.now)
            pushed = await next_line_state(events, line="fa2", total=13_749_800)
        assert pushed["shift_count"] == 2


async def test_unknown_line_stream_is_a_json_404(
    server_config: ServerConfig, clock: PinnedClock
) -> None:
    async with (
        Server(server_config, clock=clock) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        response = await http.get("/api/lines/nope/events")
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_line"


async def test_states_are_computed_only_for_followed_lines_and_coalesced(
    server_config: ServerConfig, clock: PinnedClock, publish: Publish
) -> None:
    """Twenty quick updates of fa1 and of fa2 while one screen follows fa1: fa2's state is
    never computed, fa1's is pushed at once and then once per interval, ending at the newest."""
    async with (
        Server(server_config, clock=clock) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        http.stream("GET", "/api/lines/fa1/events") as response,
    ):
        await server.listener.connected.wait()
        events = sse_events(response)
        async with asyncio.timeout(15):
            await next_line_state(events, line="fa1")
            before = server.hub.snapshots
            for n in range(20):
                await publish_counter(publish, FA1, 16_250_700 + n, 1, clock.now)
                await publish_counter(publish, FA2, 13_749_700 + n, 1, clock.now)
            await next_line_state(events, total=16_250_719)
        computed = server.hub.snapshots - before
    assert 1 <= computed <= 15, computed  # not 40 or more: fa2 unwatched, fa1 coalesced
