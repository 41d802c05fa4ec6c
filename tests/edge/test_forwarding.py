"""Each sink delivers from its own cursor: InfluxDB down for a while, the live bus goes on."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from edge.outbox import Outbox
from edge.sinks.forwarder import Backoff, forward
from edge.sinks.influxdb import InfluxV1Sink
from edge.sinks.livebus import LiveBusSink
from taktline.config.settings import InfluxV1
from taktline.livebus import COUNTER_SUBSCRIPTION
from taktline.localbroker import free_port
from taktline.model.connections import MqttConnection
from tests.edge.helpers import tcp_relay, until, update
from tests.edge.test_livebus import body, collect
from tests.fixtures.services import InfluxService, MosquittoService

FAST = Backoff(initial_s=0.05, max_s=0.3)


async def test_influxdb_down_holds_its_cursor_and_catches_up_while_live_bus_goes_on(
    tmp_path: Path, influxd: InfluxService, mosquitto: MosquittoService
) -> None:
    influxd.drop_database("edge_forward")
    port = free_port()  # nothing listens here yet: InfluxDB is "down"
    influx = InfluxV1Sink(
        InfluxV1(api="v1", url=f"http://127.0.0.1:{port}", database="edge_forward", timeout_s=2)
    )
    live = LiveBusSink(MqttConnection(host=mosquitto.host, port=mosquitto.port), "e", ["fa1"], FAST)
    async with (
        Outbox(tmp_path / "o.db", [influx.name, live.name], max_records=1000) as outbox,
        influx,
        live,
    ):
        tasks = [asyncio.create_task(forward(sink, outbox, FAST)) for sink in (influx, live)]
        try:
            await outbox.append([update(n) for n in range(1, 11)], {})
            await until(lambda: outbox.depth(live.name) == 0)
            await until(lambda: influx.health.errors >= 3)  # it retried, and kept failing
            assert outbox.cursor(influx.name) == 0
            assert influx.health.oldest_pending_ns is not None
            (latest,) = await collect(mosquitto, COUNTER_SUBSCRIPTION, 1)
            assert body(latest)["total"] == 10
            await outbox.append([update(11)], {})
            async with tcp_relay(port, influxd.port):  # InfluxDB is back
                await until(lambda: outbox.depth(influx.name) == 0)
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    rows = influxd.query("SELECT total FROM production", database="edge_forward")
    assert [row["total"] for row in rows] == list(range(1, 12))
    assert influx.health.delivered == 11
