"""The reference: a bare asyncua client subscription that only counts notifications.

Run in its own process: `python -m bench.opcua_bare --endpoint URL --nodes N`. It monitors the
load generator's N counters (`bench.opcua_load.node_id`) in one subscription, with the same
publishing and sampling intervals the edge uses, and reads it with asyncua's async-iterator API
(`create_subscription(period, None)`, `async for event in subscription`), the API that does not
spawn a task per notification. It does nothing with a value but count it.

JSON lines on stdout: `{"event": "ready", ...}` once every item is monitored, then every
REPORT_EVERY_S `{"event": "progress", "t": <monotonic s>, "notifications": <cumulative>}`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.subscription import DataChangeEvent, OverflowPolicy

from bench.opcua_load import emit, node_id

API = "async-iterator"
"""Which asyncua subscription API the reference uses (reported with its figures)."""
REPORT_EVERY_S = 0.25
BATCH = 1000
"""Monitored items created per CreateMonitoredItems call."""


async def report(counted: list[int]) -> None:
    """Print the running count every REPORT_EVERY_S."""
    while True:
        emit("progress", notifications=counted[0])
        await asyncio.sleep(REPORT_EVERY_S)


async def main_async(
    url: str, nodes: int, publishing_ms: int, sampling_ms: int, queue_size: int
) -> None:
    """Connect, monitor every node, count notifications until cancelled."""
    client = Client(url, timeout=30)
    async with client:
        subscription = await client.create_subscription(
            publishing_ms, None, queue_maxsize=queue_size, overflow=OverflowPolicy.DROP_OLDEST
        )
        ids = [ua.NodeId.from_string(node_id(i)) for i in range(nodes)]
        for start in range(0, nodes, BATCH):
            batch = [client.get_node(nid) for nid in ids[start : start + BATCH]]
            handles = await subscription.subscribe_data_change(
                batch, sampling_interval=ua.Double(sampling_ms)
            )
            refused = [h for h in handles if isinstance(h, ua.StatusCode)]
            if refused:
                raise RuntimeError(f"{len(refused)} nodes refused, e.g. {refused[0]}")
        counted = [0]
        emit("ready", nodes=nodes, api=API)
        reporter = asyncio.create_task(report(counted))
        try:
            async for event in subscription:
                if isinstance(event, DataChangeEvent):
                    counted[0] += 1
        finally:
            reporter.cancel()


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m bench.opcua_bare`."""
    parser = argparse.ArgumentParser(prog="python -m bench.opcua_bare", description=__doc__)
    parser.add_argument("--endpoint", required=True, help="opc.tcp:// URL of the generator")
    parser.add_argument("--nodes", type=int, required=True, help="number of counters")
    parser.add_argument("--publishing-ms", type=int, default=500)
    parser.add_argument("--sampling-ms", type=int, default=0)
    parser.add_argument("--queue-size", type=int, default=10_000, help="asyncua event queue")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    try:
        asyncio.run(
            main_async(
                args.endpoint, args.nodes, args.publishing_ms, args.sampling_ms, args.queue_size
            )
        )
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
