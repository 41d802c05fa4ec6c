"""Server-sent events: every change of a line's state, plus a heartbeat, to each screen.

The hub compares each line's JSON with what it last pushed and fans changes out to the
subscribers. A subscriber has a bounded queue; when a slow screen lets it fill up the oldest
item is dropped (policy: drop oldest), which only skips intermediate states because every
item carries the whole state of a line.

Cost: a line's state is computed only while some screen follows it (a line nobody watches
would otherwise cost one state per live-bus message), and for live-bus messages at most once
per `min_interval_s` (default 0.1 s): the first message of a line is pushed at once, later ones
within the interval are coalesced into one push at its end (at most 0.1 s later: the screen
latency's p99 must stay under 300 ms). The `tick_s` re-check (the clock moves shift progress
and plan) pushes without starting an interval.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
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

    def __init__(
        self,
        board: LineBoard,
        *,
        tick_s: float = 1.0,
        heartbeat_s: float = 2.0,
        min_interval_s: float = 0.1,
    ):
        self.board = board
        self.tick_s = tick_s
        self.heartbeat_s = heartbeat_s
        self.min_interval_s = min_interval_s
        self._last: dict[str, str] = {}
        self._pushed_at: dict[str, float] = {}
        self._pending: set[str] = set()
        self._followers: collections.Counter[str] = collections.Counter()
        self._all_lines = 0
        self._subscriptions: set[Subscription] = set()
        self.closed = False
        self.dropped = 0
        self.snapshots = 0
        """Line states computed for pushing (what the coalescing saves is visible here)."""

    @property
    def clients(self) -> int:
        """Open event streams."""
        return len(self._subscriptions)

    def subscribe(self, lines: frozenset[str] | None) -> Subscription:
        """A new feed for `lines` (None: all lines)."""
        subscription = Subscription(lines)
        self._subscriptions.add(subscription)
        if lines is None:
            self._all_lines += 1
        else:
            self._followers.update(lines)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget a feed (its stream ended)."""
        if subscription not in self._subscriptions:
            return
        self._subscriptions.discard(subscription)
        if subscription.lines is None:
            self._all_lines -= 1
        else:
            self._followers.subtract(subscription.lines)

    def publish(self, line_ids: Iterable[str]) -> None:
        """Push the state of each of these lines that changed, if a screen follows it: at once
        when the line was not pushed within `min_interval_s`, else at the end of that time."""
        now = asyncio.get_running_loop().time()
        for line_id in line_ids:
            if not self._all_lines and self._followers[line_id] <= 0:
                continue
            if now - self._pushed_at.get(line_id, -math.inf) >= self.min_interval_s:
                self._push(line_id, now)
            else:
                self._pending.add(line_id)

    async def run_ticker(self) -> None:
        """Push what waited for its interval; every `tick_s` re-check every line (shift
        changes, staleness, target so far)."""
        loop = asyncio.get_running_loop()
        next_check = loop.time()
        while True:
            now = loop.time()
            due = {
                line_id
                for line_id in self._pending
                if now - self._pushed_at.get(line_id, -math.inf) >= self.min_interval_s
            }
            self._pending -= due
            for line_id in due:
                self._push(line_id, now)
            if now >= next_check:  # the clock's changes: pushed, but no update's window starts
                for line_id in self.board.line_ids():
                    if self._all_lines or self._followers[line_id] > 0:
                        self._push(line_id, now, window=False)
                next_check = now + self.tick_s
            await asyncio.sleep(min(self.min_interval_s, self.tick_s) / 2)

    def close(self) -> None:
        """End every stream (server shutdown)."""
        self.closed = True
        for subscription in self._subscriptions:
            subscription.offer(None)

    def _push(self, line_id: str, now: float, *, window: bool = True) -> None:
        self._pending.discard(line_id)
        snapshot = self.board.snapshot(line_id)
        if snapshot is None:
            return
        self.snapshots += 1
        data = snapshot.model_dump_json()
        if self._last.get(line_id) == data:
            return  # nothing went out: the next change may go at once
        if window:
            self._pushed_at[line_id] = now
        self._last[line_id] = data
        for subscription in self._subscriptions:
            if subscription.lines is None or line_id in subscription.lines:
                self.dropped += subscription.offer(data)


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
