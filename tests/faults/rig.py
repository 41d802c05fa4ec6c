"""The plant under test (tests/faults/plant.yaml) with its ground truth, and the waits that
bracket a fault: the edge's first readings before counting starts, and the settling after.

The simulator serves the OPC UA lines and the paint shop's MQTT register; a VehicleReporter
publishes the audit station's messages; a source named in `rebootable` is served by a
RebootablePlc instead of the simulator. `truth()` is what was really made, `starts` the
lifetime total each counter starts from (its `initial_total`, else the register at start).

The edge is reached only through its health (`/healthz` JSON, or `EdgeAgent.health()` in
process), so the same waits serve an edge process and an agent in the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taktline.config import load_plant
from taktline.model.paths import CounterPath
from taktline.model.plant import Plant
from taktline.model.sources import MqttSource, OpcUaSource
from taktline.sim import PlantSimulator
from tests.faults.device import VehicleReporter
from tests.faults.ground_truth import ScenarioResult, check, stored_in_influxdb
from tests.faults.plc_line import RebootablePlc
from tests.fixtures.services import InfluxService
from tests.fixtures.sim import only_sources, running_simulator

PLANT_FILE = Path(__file__).with_name("plant.yaml")
DEVICE_SOURCE = "audit-mqtt"
RATE_PER_MIN = 600.0
"""Units per minute on every line (16-bit registers roll over within about 20 s)."""
DEVICE_RATE_PER_S = 10.0
PASS_RATIO = 0.97
READY_TIMEOUT_S = 40.0
SETTLE_TIMEOUT_S = 30.0
QUIET_S = 1.5
"""Synced and unchanged for this long: settled (a unit counted twice would show meanwhile)."""
POLL_S = 0.2

HealthProbe = Callable[[], Awaitable[dict[str, Any] | None]]
"""The edge's health as /healthz shows it; None while it does not answer."""


@dataclass
class Rig:
    """The running plant: production paused until `resume()`."""

    plant: Plant
    """What the edge reads: every source, on this run's ports."""
    sim: PlantSimulator
    device: VehicleReporter
    plcs: dict[str, RebootablePlc]
    starts: dict[CounterPath, int]

    def resume(self) -> None:
        """Make units everywhere."""
        self.sim.resume()
        self.device.resume()
        for plc in self.plcs.values():
            plc.resume()

    def pause(self) -> None:
        """Stop making units everywhere."""
        self.sim.pause()
        self.device.pause()
        for plc in self.plcs.values():
            plc.pause()

    async def settle(self) -> None:
        """Return once every unit made is on its server or acknowledged by the broker."""
        await self.sim.settle()
        await self.device.settle()

    def truth(self) -> dict[CounterPath, int]:
        """Units really made per counter of the plant's sources."""
        simulated = _served(self.sim.plant)
        truth = {path: n for path, n in self.sim.ground_truth().items() if path in simulated}
        for plc in self.plcs.values():
            truth |= plc.truth()
        truth[_device_path(self.plant)] = self.device.made
        return truth


@contextlib.asynccontextmanager
async def running_rig(
    mqtt_port: int, *, seed: int, rebootable: Collection[str] = ()
) -> AsyncIterator[Rig]:
    """The fault plant on the broker at `mqtt_port`, paused; `rebootable`: OPC UA source ids
    served by a RebootablePlc."""
    plant = load_plant(PLANT_FILE)
    simulated = [s.id for s in plant.sources if s.id != DEVICE_SOURCE and s.id not in rebootable]
    async with (
        running_simulator(
            only_sources(plant, *simulated),
            mqtt_port,
            rate_per_min=RATE_PER_MIN,
            seed=seed,
            pass_ratio=PASS_RATIO,
            paused=True,
        ) as (placed, sim),
        contextlib.AsyncExitStack() as stack,
    ):
        plcs = {
            source_id: await stack.enter_async_context(
                RebootablePlc(
                    plant,
                    source_id,
                    rate_per_min=RATE_PER_MIN,
                    seed=seed + 1,
                    pass_ratio=PASS_RATIO,
                )
            )
            for source_id in rebootable
        }
        device_source = next(s for s in plant.sources if s.id == DEVICE_SOURCE)
        assert isinstance(device_source, MqttSource)
        broker = device_source.broker.model_copy(update={"port": mqtt_port})
        sources = [
            *placed.sources,
            *(plc.source for plc in plcs.values()),
            device_source.model_copy(update={"broker": broker}),
        ]
        edge_plant = placed.model_copy(update={"sources": sources})
        device = await stack.enter_async_context(
            VehicleReporter(
                "127.0.0.1",
                mqtt_port,
                device_source.topics[0].topic,
                DEVICE_RATE_PER_S,
            )
        )
        registers = sim.raw()
        for plc in plcs.values():
            registers |= plc.registers()
        yield Rig(edge_plant, sim, device, plcs, _starts(edge_plant, registers))


def _served(plant: Plant) -> set[CounterPath]:
    paths: set[CounterPath] = set()
    for source in plant.sources:
        if isinstance(source, OpcUaSource):
            paths |= {CounterPath.parse(node.counter) for node in source.nodes}
        else:
            paths |= {CounterPath.parse(topic.counter) for topic in source.topics}
    return paths


def _device_path(plant: Plant) -> CounterPath:
    source = next(s for s in plant.sources if s.id == DEVICE_SOURCE)
    assert isinstance(source, MqttSource)
    return CounterPath.parse(source.topics[0].counter)


def _starts(plant: Plant, registers: dict[CounterPath, int]) -> dict[CounterPath, int]:
    """The total each served counter starts from: initial_total, else its first register (a
    `total` counter) or 0 (an `increment` counter)."""
    served = _served(plant)
    starts = {}
    for path, counter in plant.counters():
        if path in served:
            first = registers[path] if counter.semantics == "total" else 0
            starts[path] = counter.initial_total if counter.initial_total is not None else first
    return starts


async def wait_ready(health: HealthProbe, rig: Rig) -> None:
    """Wait until the edge has read every counter once and every source is connected (the
    device's messages then land in the edge's session)."""
    paths = {str(path) for path in rig.starts}
    async with asyncio.timeout(READY_TIMEOUT_S):
        while True:
            body = await health()
            if body is not None and _ready(body, paths):
                return
            await asyncio.sleep(POLL_S)


def _ready(body: dict[str, Any], paths: set[str]) -> bool:
    counters = body["counters"]
    connected = all(source["connected"] for source in body["sources"].values())
    return connected and all(counters.get(path, {}).get("total") is not None for path in paths)


async def wait_settled(health: HealthProbe) -> str | None:
    """Wait until the edge has delivered everything and its totals stood still for QUIET_S;
    None when it did, else what was still pending after SETTLE_TIMEOUT_S."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_TIMEOUT_S
    quiet_since, last = loop.time(), None
    body = None
    while loop.time() < deadline:
        body = await health()
        if body is None:
            quiet_since, last = loop.time(), None
        else:
            now = (_totals(body), _synced(body))
            if now != last or not now[1]:
                quiet_since, last = loop.time(), now
            elif loop.time() - quiet_since >= QUIET_S:
                return None
        await asyncio.sleep(POLL_S)
    if body is None:
        return f"the edge did not answer for {SETTLE_TIMEOUT_S:g}s"
    sinks = body["outbox"]["sinks"]
    depths = {name: sink["depth"] for name, sink in sinks.items()}
    down = [name for name, source in body["sources"].items() if not source["connected"]]
    return (
        f"not settled after {SETTLE_TIMEOUT_S:g}s: outbox depth per sink {depths},"
        f" sources not connected {down}"
    )


def _totals(body: dict[str, Any]) -> dict[str, int | None]:
    return {path: item["total"] for path, item in body["counters"].items()}


def _synced(body: dict[str, Any]) -> bool:
    """Every sink delivered everything and every source is connected (a source that just
    connected again brings its news within the quiet time)."""
    delivered = all(sink["depth"] == 0 for sink in body["outbox"]["sinks"].values())
    return delivered and all(source["connected"] for source in body["sources"].values())


async def wait_for_health(
    health: HealthProbe,
    condition: Callable[[dict[str, Any]], bool],
    what: str,
    timeout_s: float,
) -> dict[str, Any]:
    """The first health that meets `condition`; AssertionError naming `what` on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        body = await health()
        if body is not None and condition(body):
            return body
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"{what}: not within {timeout_s:g}s")


async def finish(
    rig: Rig, health: HealthProbe, influx: InfluxService, database: str, scenario: str
) -> ScenarioResult:
    """Stop production, let everything settle, and compare InfluxDB with the ground truth."""
    rig.pause()
    async with asyncio.timeout(SETTLE_TIMEOUT_S):
        await rig.settle()
    pending = await wait_settled(health)
    stored = await asyncio.to_thread(stored_in_influxdb, influx, database)
    result = check(scenario, rig.truth(), rig.starts, stored)
    return result if pending is None else result.with_note(pending)
