"""Server-sent events: every change of a line's state, plus a heartbeat, to each screen.

The hub compares each line's JSON with what it last pushed and fans changes out to the
subscribers. A subscriber has a bounded queue; when a slow screen lets it fill up the oldest
item is dropped (policy: drop oldest), which only skips intermediate states because every
item carries the whole state of a line.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

from fastapi import APIRouter
from sse_starlette import EventSourceResponse

from server.api import unknown_line
from server.state import LineBoard, utc_now
from taktline.livebus import format_ts

QUEUE_SIZE = 256


class Subscription:
    """One screen's feed: line JSON strings for the lines it follows, None once closed."""

    def __init__(self, lines: frozenset[str] | None):
        self.lines = lines
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=QUEUE_SIZE)

    def offer(self, item: str | None) -> int:
        """Queue an item without waiting; drop the oldest one when full. Returns the drops."""
        dropped = 0
        if self.queue.full():
            self.queue.get_nowait()
            dropped = 1
        self.queue.put_nowait(item)
        return dropped


class EventHub:
    """Pushes line states to subscribers when they change; re-checks every `tick_s`."""

    def __init__(self, board: LineBoard, *, tick_s: float = 1.0, heartbeat_s: float = 2.0):
        self.board = board
        self.tick_s = tick_s
        self.heartbeat_s = heartbeat_s
        self._last: dict[str, str] = {}
        self._subscriptions: set[Subscription] = set()
        self.closed = False
        self.dropped = 0

    @property
    def clients(self) -> int:
        """Open event streams."""
        return len(self._subscriptions)

    def subscribe(self, lines: frozenset[str] | None) -> Subscription:
        """A new feed for `lines` (None: all lines)."""
        subscription = Subscription(lines)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget a feed (its stream ended)."""
        self._subscriptions.discard(subscription)

    def publish(self, line_ids: Iterable[str]) -> None:
        """Push the state of each of these lines that changed since it was last pushed."""
        for line_id in line_ids:
            snapshot = self.board.snapshot(line_id)
            if snapshot is None:
                continue
            data = snapshot.model_dump_json()
            if self._last.get(line_id) == data:
                continue
            self._last[line_id] = data
            for subscription in self._subscriptions:
                if subscription.lines is None or line_id in subscription.lines:
                    self.dropped += subscription.offer(data)

    async def run_ticker(self) -> None:
        """Re-check every line each tick: shift changes, staleness, target so far."""
        while True:
            self.publish(self.board.line_ids())
            await asyncio.sleep(self.tick_s)

    def close(self) -> None:
        """End every stream (server shutdown)."""
        self.closed = True
        for subscription in self._subscriptions:
            subscription.offer(None)


def router(hub: EventHub) -> APIRouter:
    """`GET /api/events` (all lines) and `GET /api/lines/{line}/events`."""
    routes = APIRouter(tags=["events"])

    @routes.get("/api/events", summary="Server-sent events for every line")
    async def all_events() -> EventSourceResponse:
        return EventSourceResponse(_stream(hub, None), ping=0)

    @routes.get(
        "/api/lines/{line}/events", summary="Server-sent events for one line", response_model=None
    )
    async def line_events(line: str) -> Any:
        if hub.board.snapshot(line) is None:
            return unknown_line(hub.board, line)
        return EventSourceResponse(_stream(hub, frozenset({line})), ping=0)

    return routes


async def _stream(hub: EventHub, lines: frozenset[str] | None) -> AsyncIterator[dict[str, str]]:
    """Current state first, then changes; a heartbeat when nothing changed for a while."""
    subscription = hub.subscribe(lines)
    try:
        for snapshot in hub.board.snapshots():
            if lines is None or snapshot.line in lines:
                yield {"event": "line", "data": snapshot.model_dump_json()}
        while not hub.closed:
            try:
                item = await asyncio.wait_for(subscription.queue.get(), hub.heartbeat_s)
            except TimeoutError:
                yield {"event": "heartbeat", "data": json.dumps({"now": format_ts(utc_now())})}
                continue
            if item is None:
                return
            yield {"event": "line", "data": item}
    finally:
        hub.unsubscribe(subscription)
