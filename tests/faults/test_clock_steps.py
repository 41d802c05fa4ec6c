"""The edge's wall clock steps (NTP correcting a drifted or unset clock) while the plant counts.

libfaketime is not installed here and the edge has no clock seam (edge/clock.py reads
`time.time_ns()`), so the edge runs in the test's process as an `EdgeAgent` and its wall clock
is stepped where the edge reads it: `time.time_ns` (edge.clock.now_ns, used by the committer to
confirm held drops and by the outbox; the sinks' flush timing) and `utc_now` of the OPC UA and
MQTT collectors (the reception time of every reading). The PLCs' clocks (the source
timestamps) stay right. Just before each step a station's registers reset: the edge holds
that drop across the step.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import collectors.mqtt.collector
import collectors.opcua.collector
import collectors.support
from edge.agent import EdgeAgent
from taktline.config.loader import load_edge_config
from taktline.localbroker import free_port
from tests.faults.edge_process import write_edge_config
from tests.faults.ground_truth import Record
from tests.faults.rig import Rig, finish, running_rig, wait_ready
from tests.fixtures.services import InfluxService, MosquittoService

pytestmark = [pytest.mark.faults, pytest.mark.integration]

HOUR_S = 3600.0
RESET_SEEN_BY = ("neustadt/final/fa2/eol/tested", "neustadt/paint/paint1/topcoat/produced")


class SteppedClock:
    """The real wall clock plus an offset that a test steps."""

    def __init__(self) -> None:
        self.offset_ns = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make it the edge's wall clock (undone by `monkeypatch`)."""
        real_time_ns = time.time_ns
        real_utc_now = collectors.support.utc_now

        def time_ns() -> int:
            return real_time_ns() + self.offset_ns

        def utc_now() -> dt.datetime:
            return real_utc_now() + dt.timedelta(microseconds=self.offset_ns // 1000)

        monkeypatch.setattr(time, "time_ns", time_ns)
        monkeypatch.setattr(collectors.opcua.collector, "utc_now", utc_now)
        monkeypatch.setattr(collectors.mqtt.collector, "utc_now", utc_now)

    def step(self, seconds: float) -> None:
        """Jump by `seconds` (back when negative)."""
        self.offset_ns += int(seconds * 1e9)


@dataclass
class RunningEdge:
    """An edge agent in the test's process, running as `taktline edge` runs it (`run()`)."""

    agent: EdgeAgent
    runner: asyncio.Task[None]

    async def health(self) -> dict[str, Any]:
        return self.agent.health().to_json()

    def failure(self) -> str | None:
        """Why `run()` ended (which ends a `taktline edge` process); None while it runs."""
        if not self.runner.done():
            return None
        error = None if self.runner.cancelled() else self.runner.exception()
        text = " ".join(str(error).split())
        return f"the edge's run() ended: {type(error).__name__}: {text}"


@contextlib.asynccontextmanager
async def edge_agent(
    rig: Rig, folder: Path, mqtt_port: int, influx: InfluxService, database: str
) -> AsyncIterator[RunningEdge]:
    """An edge agent in this process for the rig, running and ready."""
    influx.drop_database(database)
    config = write_edge_config(
        folder,
        rig.plant,
        mqtt_port=mqtt_port,
        influx_url=influx.url,
        database=database,
        http_port=free_port(),
        state_dir=folder / "state",
    )
    async with EdgeAgent(load_edge_config(config)) as agent:
        edge = RunningEdge(agent, asyncio.create_task(agent.run(), name="edge run"))
        try:
            await wait_ready(edge.health, rig)
            yield edge
        finally:
            edge.runner.cancel()
            await asyncio.gather(edge.runner, return_exceptions=True)


RESETS = (("fa2", "eol"), ("paint1", "topcoat"))
"""The station whose PLC resets just before each step (another each time: a register reset
twice within seconds sits near 0, where docs/counters.md's known ambiguities begin)."""


async def run_with_steps(rig: Rig, clock: SteppedClock, steps_s: tuple[float, float]) -> None:
    """Count, then for each step: reset a station's registers (a drop the edge holds) and step
    the clock at once, and count on."""
    rig.resume()
    await asyncio.sleep(2.0)
    for (line, station), step_s in zip(RESETS, steps_s, strict=True):
        await rig.sim.reset_station(line, station)
        clock.step(step_s)
        await asyncio.sleep(3.0)


@pytest.mark.parametrize(
    ("scenario", "steps_s"),
    [
        ("edge clock stepped forward 1 h, 1 d", (HOUR_S, 24 * HOUR_S)),
        ("edge clock stepped back 1 h, 1 d", (-HOUR_S, -24 * HOUR_S)),
    ],
    ids=["forward", "back"],
)
async def test_edge_clock_stepped(
    tmp_path: Path,
    mosquitto: MosquittoService,
    influxd: InfluxService,
    monkeypatch: pytest.MonkeyPatch,
    record_result: Record,
    scenario: str,
    steps_s: tuple[float, float],
) -> None:
    clock = SteppedClock()
    clock.install(monkeypatch)
    database = "faults_clock"
    async with (
        running_rig(mosquitto.port, seed=6) as rig,
        edge_agent(rig, tmp_path, mosquitto.port, influxd, database) as edge,
    ):
        await run_with_steps(rig, clock, steps_s)
        result = await finish(rig, edge.health, influxd, database, scenario)
        counters = (await edge.health())["counters"]
        failure = edge.failure()
    resets = {path: counters[path]["decisions"].get("reset", 0) for path in RESET_SEEN_BY}
    result = result.with_note(f"resets seen by the edge: {resets}")
    if failure is not None:
        result = result.with_note(failure)
    record_result(result)
    assert resets == dict.fromkeys(RESET_SEEN_BY, 1), resets
    assert failure is None and result.exact, result.details()
