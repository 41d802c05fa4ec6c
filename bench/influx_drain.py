"""The processes of the `influx_sink` benchmark: `python -m bench.influx_drain fill|drain|bare`.

- `fill`: write a backlog of updates into an outbox file (its own process, so the drain's
  memory is not the fill's);
- `drain`: the edge's InfluxDB v1 sink and forwarder deliver that backlog, optionally while a
  feeder keeps appending new updates; prints `draining`, then `done` with the time and CPU;
- `bare`: the reference, the same points as pre-built line protocol POSTed batch after batch
  with httpx, one request in flight like the sink.

Each prints JSON lines (`{"event": ...}`) on stdout for bench.children, then waits to be
stopped (SIGINT).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gzip
import json
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import httpx

from edge.outbox import Outbox
from edge.sinks.forwarder import Backoff, forward
from edge.sinks.influxdb import GZIP_LEVEL, InfluxV1Sink
from edge.sinks.line_protocol import LineProtocol
from taktline.config.settings import InfluxV1
from taktline.model.paths import CounterPath
from taktline.records import CounterUpdate

SINK = "influxdb"
COUNTERS = 1000
"""Series the points are spread over (a large plant's counters)."""
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
_CHUNK = 10_000
_POLL_S = 0.05


def updates(first: int, count: int) -> list[CounterUpdate]:
    """Updates `first` .. `first + count - 1`: round-robin over COUNTERS, 1 ms apart."""
    paths = [
        CounterPath("bench", "area", "line", f"s{i // 100:02d}", f"c{i}") for i in range(COUNTERS)
    ]
    return [
        CounterUpdate(
            paths[n % COUNTERS],
            T0 + dt.timedelta(milliseconds=n),
            n % 65536,
            n // COUNTERS + 1,
            1,
        )
        for n in range(first, first + count)
    ]


def emit(event: str, **fields: object) -> None:
    """One JSON line for the parent."""
    print(json.dumps({"event": event, **fields}), flush=True)


async def fill(outbox_file: Path, points: int) -> None:
    """Append `points` updates to a new outbox."""
    async with Outbox(outbox_file, [SINK], max_records=points * 2 + 1_000_000) as outbox:
        for first in range(0, points, _CHUNK):
            await outbox.append(updates(first, min(_CHUNK, points - first)), {})
    emit("filled", points=points)


async def drain(outbox_file: Path, settings: InfluxV1, points: int, feed_per_s: int) -> None:
    """Deliver the first `points` rows of the outbox; feed `feed_per_s` new rows meanwhile."""
    async with (
        Outbox(outbox_file, [SINK], max_records=points * 2 + 1_000_000) as outbox,
        InfluxV1Sink(settings) as sink,
    ):
        await sink.ready()
        emit("draining")
        cpu0, started = time.process_time(), time.monotonic()
        tasks = [asyncio.create_task(forward(sink, outbox, Backoff(0.1, 1.0)))]
        if feed_per_s:
            tasks.append(asyncio.create_task(_feed(outbox, points, feed_per_s)))
        try:
            while outbox.cursor(SINK) < points:  # noqa: ASYNC110 (the forwarder advances it)
                await asyncio.sleep(_POLL_S)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        seconds = time.monotonic() - started
        emit(
            "done",
            points=points,
            seconds=seconds,
            cpu_s=time.process_time() - cpu0,
            fed=outbox.last_seq - points,
            errors=sink.health.errors,
        )


async def _feed(outbox: Outbox, after: int, per_s: int) -> None:
    """New data while the backlog drains: `per_s` updates a second, in tenths."""
    step = max(1, per_s // 10)
    first = after
    while True:
        await outbox.append(updates(first, step), {})
        first += step
        await asyncio.sleep(0.1)


async def bare(settings: InfluxV1, points: int) -> None:
    """POST the same points as pre-built bodies, one request at a time."""
    lines = LineProtocol(settings.precision)
    bodies = []
    for first in range(0, points, settings.batch_size):
        body = lines.body(updates(first, min(settings.batch_size, points - first)))
        bodies.append(gzip.compress(body, GZIP_LEVEL, mtime=0) if settings.gzip else body)
    headers = {"Content-Encoding": "gzip"} if settings.gzip else {}
    params = {"db": settings.database, "precision": settings.precision}
    async with httpx.AsyncClient(base_url=settings.url, timeout=60) as client:
        await client.post("/query", params={"q": f'CREATE DATABASE "{settings.database}"'})
        emit("draining")
        cpu0, started = time.process_time(), time.monotonic()
        for body in bodies:
            answer = await client.post("/write", params=params, content=body, headers=headers)
            answer.raise_for_status()
        emit(
            "done",
            points=points,
            seconds=time.monotonic() - started,
            cpu_s=time.process_time() - cpu0,
        )


def main(argv: Sequence[str] | None = None) -> None:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m bench.influx_drain")
    p.add_argument("mode", choices=("fill", "drain", "bare"))
    p.add_argument("--outbox", type=Path)
    p.add_argument("--url", default="")
    p.add_argument("--database", default="bench")
    p.add_argument("--points", type=int, required=True)
    p.add_argument("--batch", type=int, default=5000)
    p.add_argument("--gzip", type=int, default=1)
    p.add_argument("--feed", type=int, default=0, help="new updates per second while draining")
    args = p.parse_args(argv)
    settings = InfluxV1(
        api="v1",
        url=args.url or "http://127.0.0.1:8086",
        database=args.database,
        batch_size=args.batch,
        gzip=bool(args.gzip),
        flush_interval_ms=0,
        timeout_s=60,
    )
    with contextlib.suppress(KeyboardInterrupt):  # the parent stops us with SIGINT
        if args.mode == "fill":
            asyncio.run(_then_wait(fill(args.outbox, args.points)))
        elif args.mode == "drain":
            asyncio.run(_then_wait(drain(args.outbox, settings, args.points, args.feed)))
        else:
            asyncio.run(_then_wait(bare(settings, args.points)))


async def _then_wait(work: Coroutine[Any, Any, None]) -> None:
    """Do the work, then stay until stopped: the parent reads the last line while we live."""
    await work
    await asyncio.Event().wait()


if __name__ == "__main__":
    main()
