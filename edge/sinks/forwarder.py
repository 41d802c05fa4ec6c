"""One task per sink: read a batch after its cursor, send it, advance the cursor.

A batch the sink rejects for good (BatchRejectedError: a bad point, a field type conflict) is
halved until the rejected updates are found; each is parked in the outbox's dead letters with
the reason (`taktline`'s health counts them) and the rest is delivered, so one bad point never
blocks the queue. That costs about 2 log2(batch) requests per bad point.

A sink that is down holds its cursor (its backlog waits in the outbox) while the others go on.
A batch short of the sink's batch size waits until its oldest update is `flush_interval_s` old
(InfluxDB takes few large writes better than many small ones). Retries wait a capped
exponential backoff with jitter, or longer when the destination said so (Retry-After).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass

from edge.outbox import Outbox, OutboxDiskFullError, StoredUpdate
from edge.sinks.base import Sink
from edge.sinks.errors import BatchRejectedError, SinkUnavailableError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff between retries."""

    initial_s: float = 0.5
    max_s: float = 30.0

    def next(self, delay: float) -> float:
        """The delay after `delay`."""
        return min(delay * 2, self.max_s)


DEFAULT_BACKOFF = Backoff()


def jittered(delay: float) -> float:
    """Half to all of `delay`: edges that lost the same server do not retry in step."""
    return delay * random.uniform(0.5, 1.0)


async def forward(sink: Sink, outbox: Outbox, backoff: Backoff) -> None:
    """Deliver the outbox to `sink` until cancelled."""
    delay = backoff.initial_s
    failing = False
    ahead: asyncio.Task[list[StoredUpdate]] | None = None
    try:
        while True:
            batch = await (ahead or outbox.read_after(sink.name, sink.batch_size))
            ahead = None
            if len(batch) == sink.batch_size:  # a backlog: read the next batch while sending
                ahead = asyncio.create_task(outbox.read_from(batch[-1].seq, sink.batch_size))
            delay, failing = await _step(sink, outbox, backoff, batch, delay, failing)
            if failing and ahead is not None:  # the batch is read again after the pause
                ahead.cancel()
                ahead = None
    finally:
        if ahead is not None:
            ahead.cancel()


async def _step(
    sink: Sink,
    outbox: Outbox,
    backoff: Backoff,
    batch: list[StoredUpdate],
    delay: float,
    failing: bool,
) -> tuple[float, bool]:
    """Deliver one batch read after the cursor (or wait for one); returns the next retry delay
    and whether delivery is failing."""
    health = sink.health
    if not batch:
        health.oldest_pending_ns = None
        await outbox.wait_appended(outbox.cursor(sink.name))
        return delay, failing
    health.oldest_pending_ns = batch[0].stored_ns
    if len(batch) < sink.batch_size and await _wait_to_fill(sink, batch[0].stored_ns):
        return delay, failing  # read again: more may have come
    try:
        await sink.ready()
        parked = await _deliver(sink, outbox, batch)
    except SinkUnavailableError as exc:
        health.failed("unavailable", str(exc))
        if not failing:
            log.warning(
                "%s: cannot deliver (%s); holding %d updates, retrying",
                sink.name,
                exc,
                outbox.depth(sink.name),
            )
        await asyncio.sleep(max(jittered(delay), exc.retry_after_s or 0.0))
        return backoff.next(delay), True
    except OutboxDiskFullError as exc:  # parking a rejected update
        return await _pause_for_disk(sink, exc, backoff, delay, failing)
    try:
        await outbox.advance(sink.name, batch[-1].seq)
    except OutboxDiskFullError as exc:  # delivered, not recorded: sent again (idempotent)
        return await _pause_for_disk(sink, exc, backoff, delay, failing)
    health.delivered += len(batch) - parked
    if failing:
        log.info("%s: delivering again (%d updates pending)", sink.name, outbox.depth(sink.name))
    return backoff.initial_s, False


async def _pause_for_disk(
    sink: Sink, exc: OutboxDiskFullError, backoff: Backoff, delay: float, failing: bool
) -> tuple[float, bool]:
    """The outbox could not record the sink's progress: wait, then the batch is read again."""
    if not failing:
        log.warning("%s: %s; the batch is sent again after a pause", sink.name, exc)
    await asyncio.sleep(jittered(delay))
    return backoff.next(delay), True


async def _deliver(sink: Sink, outbox: Outbox, batch: list[StoredUpdate]) -> int:
    """Send the batch; when the sink rejects it, isolate the rejected updates by halving and
    park them in the outbox's dead letters. Returns how many were parked. SinkUnavailableError
    passes through (the whole batch is retried; what was delivered is delivered again)."""
    health = sink.health
    started = time.perf_counter()
    try:
        await sink.send([stored.update for stored in batch])
        health.writes += 1
        health.write_seconds += time.perf_counter() - started
        return 0
    except BatchRejectedError as exc:
        health.failed("rejected", str(exc))
        if len(batch) > 1:
            middle = len(batch) // 2
            return await _deliver(sink, outbox, batch[:middle]) + await _deliver(
                sink, outbox, batch[middle:]
            )
        (stored,) = batch
        await outbox.park(sink.name, stored, str(exc))
        health.rejected += 1
        log.error(
            "%s: update %d (%s, total %d) rejected for good, parked in the dead letters: %s",
            sink.name,
            stored.seq,
            stored.update.counter,
            stored.update.total,
            exc,
        )
        return 1


async def _wait_to_fill(sink: Sink, oldest_ns: int) -> bool:
    """Sleep until a short batch's oldest update is `flush_interval_s` old; False when it is
    already (or the sink sends at once). The stored time is wall-clock time: an update stored
    "in the future" (the clock was stepped back since) is sent at once rather than held for the
    size of the step."""
    age_s = (time.time_ns() - oldest_ns) / 1e9
    wait_s = sink.flush_interval_s - age_s
    if wait_s <= 0 or age_s < 0:
        return False
    await asyncio.sleep(wait_s)
    return True
