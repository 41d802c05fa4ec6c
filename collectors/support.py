"""What every collector needs besides its protocol: backoff, outage logging, the reading stream.

Protocol-neutral; it lives here until it moves to `collectors/` (the MQTT collector imports it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Hashable, Sequence
from types import TracebackType
from typing import Self

from collectors.base import SourceHealth
from taktline.records import Reading

log = logging.getLogger(__name__)


class Backoff:
    """Capped exponential backoff with equal jitter.

    The n-th delay (from 0) lies in [d/2, d] with d = min(cap_s, base_s * 2**n): it grows fast,
    never exceeds the cap, never drops to zero (so a restarting server is not stormed) and
    spreads many edges that lost the same server over half the interval.
    """

    def __init__(self, base_s: float = 0.5, cap_s: float = 30.0) -> None:
        if not 0 < base_s <= cap_s:
            raise ValueError("need 0 < base_s <= cap_s")
        self.base_s = base_s
        self.cap_s = cap_s
        self._attempt = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts as one failed attempt."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(self._attempt, 32))
        self._attempt += 1
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def reset(self) -> None:
        """After a success: the next failure starts at the base delay again."""
        self._attempt = 0


class OutageLog:
    """Keeps `health` current and logs a source's outage once when it starts, once when it ends."""

    def __init__(self, logger: logging.Logger, health: SourceHealth) -> None:
        self._log = logger
        self._health = health
        self._failures = 0

    def failed(self, error: str) -> None:
        """A connect attempt failed or the connection was lost."""
        self._health.connected = False
        self._health.last_error = error
        self._failures += 1
        if self._failures == 1:
            self._log.warning("source %s: %s; reconnecting", self._health.source_id, error)
        else:
            self._log.debug("source %s: still failing: %s", self._health.source_id, error)

    def connected(self) -> None:
        """A session is up and subscribed."""
        self._health.connected = True
        if self._failures:
            self._log.info(
                "source %s: recovered after %d failed attempt(s)",
                self._health.source_id,
                self._failures,
            )
        self._failures = 0


class Throttle:
    """Says yes to a key at most once per `period_s` (for 'log once per topic per minute')."""

    def __init__(self, period_s: float = 60.0) -> None:
        self._period_s = period_s
        self._last: dict[Hashable, float] = {}

    def ready(self, key: Hashable) -> bool:
        """True when `key` was not let through within the last period."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._period_s:
            return False
        self._last[key] = now
        return True


class ReadingStream:
    """The bounded queue between a collector's receive task and its one consumer.

    Overflow policy BLOCK (back-pressure): when `maxsize` readings wait, `put` waits until the
    consumer has taken the queue down to half of that (so a held-back producer resumes with
    room for a batch, not for one reading at a time); nothing is dropped here. What happens
    upstream meanwhile is the protocol's business and is documented in each collector's README.
    `close()` ends iteration once the queued readings are taken; `fail(exc)` ends it by raising.
    """

    def __init__(self, health: SourceHealth, maxsize: int = 10_000) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._health = health
        self._maxsize = maxsize
        self._resume_at = maxsize // 2
        self._items: deque[Reading] = deque()
        self._readable = asyncio.Event()
        """Set while readings wait or the stream is closed."""
        self._writable = asyncio.Event()
        """Set while the queue has room for the producer."""
        self._writable.set()
        self._closed = False
        self._error: BaseException | None = None

    async def put(self, reading: Reading) -> None:
        """Queue one reading (waits while the queue is full)."""
        await self.put_many((reading,))

    async def put_many(self, readings: Sequence[Reading]) -> None:
        """Queue readings in order (waits whenever the queue is full)."""
        if not readings:
            return
        self._health.last_data_at = readings[-1].received_at
        items, done = self._items, 0
        while True:
            room = self._maxsize - len(items)
            if room > 0:
                if done == 0 and room >= len(readings):
                    items.extend(readings)
                else:
                    items.extend(readings[done : done + room])
                done += room
                self._readable.set()
                if done >= len(readings):
                    return
            self._writable.clear()
            await self._writable.wait()

    def close(self) -> None:
        """No more readings will come."""
        self._closed = True
        self._readable.set()  # wakes a consumer waiting on an empty queue

    def fail(self, error: BaseException) -> None:
        """The receive task died: the consumer gets `error` after the queued readings."""
        self._error = error
        self.close()

    async def __aiter__(self) -> AsyncIterator[Reading]:
        items, writable = self._items, self._writable
        while True:
            while items:
                reading = items.popleft()
                if len(items) <= self._resume_at and not writable.is_set():
                    writable.set()
                yield reading
            if self._closed:
                break
            self._readable.clear()
            await self._readable.wait()
        if self._error is not None:
            raise self._error


def utc_now() -> dt.datetime:
    """The receive time of a reading."""
    return dt.datetime.now(dt.UTC)


STOP_GRACE_S = 10.0
"""How long leaving waits for a collector's task after cancelling it (it closes its connection
on the way out, within its request timeouts) before cancelling it again."""


class BackgroundCollector:
    """What every collector shares: `async with` runs `_run` as one background task that feeds
    `_stream`; leaving cancels it (the task closes its connection on the way out) and ends
    `readings()`. A task that dies of an unexpected error ends `readings()` with that error.

    A task still running STOP_GRACE_S after the cancel is cancelled again, and again: a library
    that turns a cancellation into an error of its own (a timeout in its goodbye, say) would
    otherwise leave the collector reconnecting and a stopping edge waiting forever."""

    source_id: str
    health: SourceHealth
    _stream: ReadingStream
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name=f"collector:{self.source_id}")
        self._task.add_done_callback(self._on_run_done)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            while not (await asyncio.wait([task], timeout=STOP_GRACE_S))[0]:
                log.warning(
                    "source %s: still running %ss after the stop; cancelling it again",
                    self.source_id,
                    STOP_GRACE_S,
                )
                task.cancel()
        self._stream.close()
        self.health.connected = False

    def readings(self) -> AsyncIterator[Reading]:
        """Every reading, in arrival order, until the collector is closed."""
        return aiter(self._stream)

    def _on_run_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("source %s: collector stopped: %r", self.source_id, error)
            self._stream.fail(error)
