"""Edge health samples as InfluxDB points, written over HTTP (v1 `/write` or v2 `/api/v2/write`).

Points (docs/contracts.md), each stamped with the sample's `ts` in ns:
- `edge_source`, tags `edge`, `source`: `connected` (1 or 0), `reconnects`, `readings`,
  `rejected` (integers; the last three count since the edge started).
- `edge_outbox`, tag `edge`: `depth`, `dropped`, `max_records`, `full` (1 or 0) (integers),
  `oldest_age_s` (float).
- `edge_sink`, tags `edge`, `sink`: `connected` (1 or 0), `depth`, `delivered`, `errors`,
  `rejected` (integers), `write_s` (float; left out when the sample has none).
`connected` and `full` are integers so that InfluxQL can aggregate them (min, max, mean).

Health is a sample, not a count: nothing is retried. `offer` never blocks the live-bus
listener; samples wait in a bounded queue (overflow policy: drop the oldest sample). The writer
task sends what waits in one request; a failed write drops its samples (counted in `dropped`),
logged once when writing starts failing and once when it works again. A sample written twice
(a retained message replayed after a reconnect) is the same point.
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from server.influx_http import InfluxHttpWriter, InfluxWriteError
from taktline.config.settings import InfluxV1, InfluxV2
from taktline.influxwire import epoch_ns, escape_tag
from taktline.livebus import EdgeHealth

log = logging.getLogger(__name__)

SOURCE, OUTBOX, SINK = "edge_source", "edge_outbox", "edge_sink"
QUEUE_SIZE = 1000
"""Most samples waiting to be written (a hundred edges' samples for 100 s at the default 10 s)."""
BATCH = 500
"""Most samples in one write request."""


def points(health: EdgeHealth) -> list[str]:
    """The sample's points, as lines of line protocol."""
    ns = epoch_ns(health.ts)
    edge = f"edge={escape_tag(health.edge_id)}"
    lines = []
    for source in health.sources:
        fields = (
            f"connected={int(source.connected)}i,reconnects={source.reconnects}i,"
            f"readings={source.readings}i,rejected={source.rejected}i"
        )
        lines.append(f"{SOURCE},{edge},source={escape_tag(source.source)} {fields} {ns}")
    outbox = health.outbox
    fields = (
        f"depth={outbox.depth}i,dropped={outbox.dropped}i,full={int(outbox.full)}i,"
        f"max_records={outbox.max_records}i,oldest_age_s={float(outbox.oldest_age_s)!r}"
    )
    lines.append(f"{OUTBOX},{edge} {fields} {ns}")
    for sink in health.sinks:
        fields = (
            f"connected={int(sink.connected)}i,delivered={sink.delivered}i,depth={sink.depth}i,"
            f"errors={sink.errors}i,rejected={sink.rejected}i"
        )
        if sink.write_s is not None:
            fields += f",write_s={float(sink.write_s)!r}"
        lines.append(f"{SINK},{edge},sink={escape_tag(sink.sink)} {fields} {ns}")
    return lines


class EdgeHealthInflux:
    """`writer.offer(sample)` from the listener; `await writer.run()` in a task."""

    def __init__(
        self,
        settings: InfluxV1 | InfluxV2,
        *,
        queue_size: int = QUEUE_SIZE,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.settings = settings
        self._transport = transport
        self._queue: asyncio.Queue[EdgeHealth] = asyncio.Queue(queue_size)
        self.written = 0
        """Samples InfluxDB took."""
        self.dropped = 0
        """Samples lost: pushed out of a full queue, or in a failed write."""
        self._failing = False

    def offer(self, health: EdgeHealth) -> None:
        """Queue a sample for writing; when the queue is full the oldest one is dropped."""
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(health)

    async def run(self) -> None:
        """Write queued samples until cancelled."""
        async with InfluxHttpWriter(self.settings, transport=self._transport) as influx:
            while True:
                batch = [await self._queue.get()]
                while len(batch) < BATCH and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                await self._write(influx, batch)

    async def _write(self, influx: InfluxHttpWriter, batch: list[EdgeHealth]) -> None:
        try:
            await influx.write(line for health in batch for line in points(health))
        except InfluxWriteError as exc:
            self.dropped += len(batch)
            if not self._failing:
                log.warning(
                    "edge health: InfluxDB did not take %d samples (%s); dropped, as are the"
                    " next ones until it does",
                    len(batch),
                    exc,
                )
                self._failing = True
            return
        self.written += len(batch)
        if self._failing:
            log.info("edge health: writing to InfluxDB %s again", self.settings.url)
            self._failing = False
