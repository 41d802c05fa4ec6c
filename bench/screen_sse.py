"""Plain event-stream clients for `screen_latency`: what N line screens ask of the server, minus
the browsers.

Run in its own process: `python -m bench.screen_sse --url U --lines l000,l001,...`. It holds one
`GET /api/lines/{line}/events` per line named (repeat a line for two screens on it), each on
its own connection, and counts the `line` events. It prints `{"event": "ready", "streams": N}`
once every stream delivered its first event, then every REPORT_EVERY_S `{"event": "progress",
"t": <monotonic s>, "events": <cumulative>, "streams": <open>}`. A stream that ends or fails
ends the process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import httpx

REPORT_EVERY_S = 0.25


def emit(event: str, **fields: float | int) -> None:
    """One JSON line on stdout (the benchmark reads them)."""
    sys.stdout.write(json.dumps({"event": event, "t": time.monotonic(), **fields}) + "\n")
    sys.stdout.flush()


class Tally:
    """Line events received so far, and the streams that delivered their first one."""

    def __init__(self, streams: int) -> None:
        self.events = 0
        self.started = 0
        self.all_started = asyncio.Event()
        self._streams = streams

    def first(self) -> None:
        """A stream delivered its first event."""
        self.started += 1
        if self.started == self._streams:
            self.all_started.set()


async def follow(client: httpx.AsyncClient, line: str, tally: Tally) -> None:
    """Read one line's event stream until it ends."""
    first = True
    async with client.stream("GET", f"/api/lines/{line}/events") as response:
        response.raise_for_status()
        async for text in response.aiter_lines():
            if text == "event: line":
                tally.events += 1
                if first:
                    tally.first()
                    first = False
    raise RuntimeError(f"the event stream of line {line} ended")


async def report(tally: Tally) -> None:
    """`ready` once all streams run, then `progress` lines."""
    await tally.all_started.wait()
    emit("ready", streams=tally.started)
    while True:
        emit("progress", events=tally.events, streams=tally.started)
        await asyncio.sleep(REPORT_EVERY_S)


async def main_async(url: str, lines: list[str]) -> None:
    """Follow every stream; fail when one fails."""
    tally = Tally(len(lines))
    limits = httpx.Limits(max_connections=len(lines), max_keepalive_connections=0)
    timeout = httpx.Timeout(10.0, read=30.0)
    async with (
        httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client,
        asyncio.TaskGroup() as group,
    ):
        for line in lines:
            group.create_task(follow(client, line, tally))
        group.create_task(report(tally))


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m bench.screen_sse`."""
    parser = argparse.ArgumentParser(prog="python -m bench.screen_sse", description=__doc__)
    parser.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--lines", required=True, help="comma-separated line ids, one per stream")
    args = parser.parse_args(argv)
    try:
        asyncio.run(main_async(args.url, args.lines.split(",")))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
