"""The PLC stand-in of `screen_latency`: one probe register written on cue, plus background load.

Run in its own process: `python -m bench.screen_plc --port P --background N --probe-changes K`.
It serves `1 + N` UInt32 registers on an asyncua server (bench.opcua_load's address space):
node 0 is the probe register, nodes 1..N are background counters, each incremented `--rate`
times a second, spread over 10 ms ticks (bench.opcua_load.count, which reports `progress`).

The probe register stands still at 0 until the process gets SIGUSR1; then it is incremented
`--probe-changes` times, one every `--probe-every` seconds +-10% (seeded jitter, so the writes
fall at every phase of the OPC UA publishing interval and the live bus's rate limit). For each
write it prints `{"event": "probe", "k": k, "value": k, "wall": <time.time() just before the
write>}`, and at the end `{"event": "probe_done", "walls": [...]}`, the wall time of write k at
index k - 1.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import random
import signal
import sys
import time
from typing import cast

from asyncua import ua
from asyncua.server.server import Server

from bench.opcua_load import build_server, count, endpoint

JITTER = 0.1
"""Each gap between probe writes is `probe_every` x uniform(1 - JITTER, 1 + JITTER)."""


def emit(event: str, **fields: object) -> None:
    """One JSON line on stdout (the benchmark reads them)."""
    sys.stdout.write(json.dumps({"event": event, "t": time.monotonic(), **fields}) + "\n")
    sys.stdout.flush()


async def write_probe(server: Server, node: ua.NodeId, value: int) -> float:
    """Set the probe register to `value` (Good, timestamps now); the wall time just before."""
    wall = time.time()
    now = cast(ua.DateTime, dt.datetime.fromtimestamp(wall, dt.UTC))
    data = ua.DataValue(
        ua.Variant(value, ua.VariantType.UInt32), SourceTimestamp=now, ServerTimestamp=now
    )
    await server.write_attribute_value(node, data)
    return wall


async def probe(server: Server, node: ua.NodeId, changes: int, every_s: float, seed: int) -> None:
    """Increment the probe register `changes` times, reporting the wall time of each write."""
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    walls: list[float] = []
    due = loop.time()
    for k in range(1, changes + 1):
        await asyncio.sleep(max(0.0, due - loop.time()))
        wall = await write_probe(server, node, k)
        walls.append(wall)
        emit("probe", k=k, value=k, wall=wall)
        due += every_s * rng.uniform(1 - JITTER, 1 + JITTER)
    emit("probe_done", walls=walls)


async def main_async(args: argparse.Namespace) -> None:
    """Serve the registers, count the background, run the probe on SIGUSR1; until killed."""
    begun = time.monotonic()
    server, ids = await build_server(1 + args.background, args.port)
    cue = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, cue.set)
    emit(
        "ready",
        nodes=len(ids),
        endpoint=endpoint(args.port),
        build_s=round(time.monotonic() - begun, 2),
    )
    tasks = [asyncio.create_task(_cued_probe(server, ids[0], cue, args), name="probe")]
    if args.background:
        load = count(server, ids[1:], args.rate, args.tick_ms / 1000)
        tasks.append(asyncio.create_task(load, name="background"))
    try:
        await asyncio.gather(*tasks)  # neither ends: a failure ends the process
    finally:
        for task in tasks:
            task.cancel()
        await server.stop()


async def _cued_probe(
    server: Server, node: ua.NodeId, cue: asyncio.Event, args: argparse.Namespace
) -> None:
    """The probe once cued; then serve on (the process runs until stopped)."""
    await cue.wait()
    await probe(server, node, args.probe_changes, args.probe_every, args.seed)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m bench.screen_plc`."""
    parser = argparse.ArgumentParser(prog="python -m bench.screen_plc", description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    parser.add_argument("--background", type=int, required=True, help="background counters")
    parser.add_argument("--rate", type=float, default=1.0, help="increments per counter per s")
    parser.add_argument("--tick-ms", type=float, default=10.0, help="spread over ticks of this")
    parser.add_argument("--probe-changes", type=int, required=True, help="probe writes")
    parser.add_argument("--probe-every", type=float, default=0.5, help="mean s between writes")
    parser.add_argument("--seed", type=int, default=1, help="seed of the probe's jitter")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    try:
        asyncio.run(main_async(args))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
