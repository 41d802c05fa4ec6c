"""OPC UA load generator: an asyncua server whose N UInt32 counters each count at a fixed rate.

Run in its own process: `python -m bench.opcua_load --nodes N --port P`. Node `i` is
`ns=2;s=C{i:05d}` (namespace NAMESPACE_URI, index 2 on a fresh server). Every counter is
incremented `--rate` times per second; the increments are spread evenly over the second in
ticks of `--tick-ms`, so the server sees a steady stream rather than one burst a second.

It prints JSON lines on stdout: `{"event": "ready", ...}` once it listens, then every
`REPORT_EVERY_S` `{"event": "progress", "t": <monotonic s>, "changes": <cumulative>,
"behind_s": <how late the current tick is>}`. The achieved change rate is measured, not assumed:
when the server cannot keep up, `changes` grows slower than N x rate and `behind_s` grows.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import sys
import time
from typing import cast

from asyncua import ua
from asyncua.server.server import Server

NAMESPACE_URI = "urn:taktline:bench"
NAMESPACE_INDEX = 2
ENDPOINT_PATH = "/bench"
REPORT_EVERY_S = 0.25
FOLDER_SIZE = 100


def node_id(index: int) -> str:
    """The NodeId string of counter `index`."""
    return f"ns={NAMESPACE_INDEX};s=C{index:05d}"


def endpoint(port: int) -> str:
    """The generator's endpoint URL on 127.0.0.1:port."""
    return f"opc.tcp://127.0.0.1:{port}{ENDPOINT_PATH}"


def emit(event: str, **fields: float | int | str) -> None:
    """One JSON line on stdout (the harness reads them)."""
    sys.stdout.write(json.dumps({"event": event, "t": time.monotonic(), **fields}) + "\n")
    sys.stdout.flush()


async def build_server(nodes: int, port: int) -> tuple[Server, list[ua.NodeId]]:
    """An unsecured server with `nodes` UInt32 counters at 0, listening."""
    server = Server()
    await server.init()
    server.set_endpoint(endpoint(port))
    server.set_server_name("taktline bench load generator")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    index = await server.register_namespace(NAMESPACE_URI)
    if index != NAMESPACE_INDEX:
        raise RuntimeError(f"namespace index {index}, expected {NAMESPACE_INDEX}")
    folder = None
    ids: list[ua.NodeId] = []
    for i in range(nodes):
        if i % FOLDER_SIZE == 0:  # asyncua adds a child in time linear in its siblings
            name = f"Counters{i // FOLDER_SIZE:03d}"
            folder = await server.nodes.objects.add_folder(
                ua.NodeId(ua.String(name), ua.Int16(index)), name
            )
        assert folder is not None
        node = await folder.add_variable(
            ua.NodeId.from_string(node_id(i)),
            ua.QualifiedName(f"C{i:05d}", index),
            ua.Variant(0, ua.VariantType.UInt32),
        )
        ids.append(node.nodeid)
    await server.start()
    return server, ids


async def count(server: Server, ids: list[ua.NodeId], rate: float, tick_s: float) -> None:
    """Increment every counter `rate` times a second, spread over ticks; report progress."""
    loop = asyncio.get_running_loop()
    ticks_per_round = max(1, round(1 / (rate * tick_s)))
    period = 1 / (rate * ticks_per_round)
    values = [0] * len(ids)
    changes = 0
    start = loop.time()
    next_report = start
    tick = 0
    while True:
        slot = tick % ticks_per_round
        now = cast(ua.DateTime, dt.datetime.now(dt.UTC))  # asyncua's marker type for datetimes
        for i in range(slot, len(ids), ticks_per_round):
            values[i] = (values[i] + 1) & 0xFFFFFFFF
            value = ua.DataValue(
                ua.Variant(values[i], ua.VariantType.UInt32),
                SourceTimestamp=now,
                ServerTimestamp=now,
            )
            await server.write_attribute_value(ids[i], value)
            changes += 1
        tick += 1
        due = start + tick * period
        now_s = loop.time()
        if now_s >= next_report:
            emit("progress", changes=changes, behind_s=round(max(0.0, now_s - due), 3))
            next_report = now_s + REPORT_EVERY_S
        await asyncio.sleep(max(0.0, due - now_s))


async def main_async(nodes: int, port: int, rate: float, tick_s: float) -> None:
    """Build the server, say ready, count until killed."""
    begun = time.monotonic()
    server, ids = await build_server(nodes, port)
    emit("ready", nodes=nodes, endpoint=endpoint(port), build_s=round(time.monotonic() - begun, 2))
    try:
        await count(server, ids, rate, tick_s)
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m bench.opcua_load`."""
    parser = argparse.ArgumentParser(prog="python -m bench.opcua_load", description=__doc__)
    parser.add_argument("--nodes", type=int, required=True, help="number of counters")
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    parser.add_argument("--rate", type=float, default=1.0, help="increments per counter per s")
    parser.add_argument("--tick-ms", type=float, default=10.0, help="spread over ticks of this")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    try:
        asyncio.run(main_async(args.nodes, args.port, args.rate, args.tick_ms / 1000))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
