"""One task per sink: read a batch after its cursor, send it, advance the cursor.

A sink that is down holds its cursor (its backlog waits in the outbox) while the others go on.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from edge.outbox import Outbox, StoredUpdate
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


async def forward(sink: Sink, outbox: Outbox, backoff: Backoff) -> None:
    """Deliver the outbox to `sink` until cancelled."""
    health = sink.health
    delay = backoff.initial_s
    failing = False
    while True:
        batch: list[StoredUpdate] = []
        try:
            batch = await outbox.read_after(sink.name, sink.batch_size)
            if not batch:
                health.oldest_pending_ns = None
                await outbox.wait_appended(outbox.cursor(sink.name))
                continue
            health.oldest_pending_ns = batch[0].stored_ns
            await sink.ready()
            await sink.send([stored.update for stored in batch])
        except SinkUnavailableError as exc:
            health.errors += 1
            health.last_error = str(exc)
            if not failing:
                log.warning(
                    "%s: cannot deliver (%s); holding %d updates, retrying",
                    sink.name,
                    exc,
                    outbox.depth(sink.name),
                )
                failing = True
            await asyncio.sleep(delay)
            delay = backoff.next(delay)
            continue
        except BatchRejectedError as exc:
            health.errors += 1
            health.rejected += len(batch)
            health.last_error = str(exc)
            log.error(
                "%s: rejected updates %d..%d for good, skipping them: %s",
                sink.name,
                batch[0].seq,
                batch[-1].seq,
                exc,
            )
        else:
            health.delivered += len(batch)
        await outbox.advance(sink.name, batch[-1].seq)
        if failing:
            pending = outbox.depth(sink.name)
            log.info("%s: delivering again (%d updates pending)", sink.name, pending)
            failing = False
            delay = backoff.initial_s
