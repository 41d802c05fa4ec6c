"""`taktline sim`: run the simulator in the foreground with a ground-truth table every 10 s."""

from __future__ import annotations

import asyncio
import logging

from taktline.model.plant import Plant
from taktline.sim.simulator import PlantSimulator

log = logging.getLogger(__name__)

REPORT_EVERY_S = 10.0


async def run_simulator(
    plant: Plant,
    *,
    rate: float | None,
    duration: float | None,
    seed: int | None,
    reset_every_s: float | None = None,
) -> None:
    """Serve the plant's sources until `duration` seconds have passed (None: until cancelled)."""
    async with PlantSimulator(
        plant, rate_per_min=rate, seed=seed, reset_every_s=reset_every_s
    ) as simulator:
        for endpoint in simulator.endpoints:
            log.info("OPC UA source %s: %s", endpoint.source.id, endpoint.endpoint)
        for publisher in simulator.publishers:
            broker = publisher.source.broker
            log.info("MQTT source %s: broker %s:%d", publisher.source.id, broker.host, broker.port)
        try:
            await _report_until(simulator, duration)
        finally:
            print(ground_truth_table(simulator), flush=True)


async def _report_until(simulator: PlantSimulator, duration: float | None) -> None:
    loop = asyncio.get_running_loop()
    deadline = None if duration is None else loop.time() + duration
    while True:
        wait = REPORT_EVERY_S if deadline is None else min(REPORT_EVERY_S, deadline - loop.time())
        if wait <= 0:
            return
        await asyncio.sleep(wait)
        if deadline is not None and loop.time() >= deadline:
            return
        print(ground_truth_table(simulator), flush=True)


def ground_truth_table(simulator: PlantSimulator) -> str:
    """Per counter: units really counted, the register now, its resets and rollovers."""
    truth, raw, stats = simulator.ground_truth(), simulator.raw(), simulator.stats
    width = max((len(str(path)) for path in truth), default=7)
    rows = [f"{'counter':<{width}} {'truth':>10} {'raw':>20} {'resets':>7} {'rollovers':>9}"]
    rows += [
        f"{path!s:<{width}} {count:>10} {raw[path]:>20} "
        f"{stats.resets_by_counter[path]:>7} {stats.rollovers_by_counter[path]:>9}"
        for path, count in truth.items()
    ]
    return "\n".join(rows)
