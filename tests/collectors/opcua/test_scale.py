"""Thousands of nodes: a subscription of 2,000 counters arrives complete."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from asyncua import ua

from taktline.localbroker import free_port
from taktline.records import Quality, Reading
from tests.collectors.conftest import fast_collector, opcua_source
from tests.collectors.helpers import collect_until
from tests.collectors.plc import PlcServer

COUNT = 2_000


def complete(expected: dict[str, int]) -> Callable[[list[Reading]], bool]:
    """A `done` predicate: every address has had its expected value."""
    missing = dict(expected)

    def done(seen: list[Reading]) -> bool:
        reading = seen[-1]
        if missing.get(reading.address) == reading.value and reading.quality is Quality.GOOD:
            del missing[reading.address]
        return not missing

    return done


@pytest.mark.slow
async def test_two_thousand_counters_arrive_complete_in_batches_of_the_server_limit() -> None:
    names = [f"Cell{i // 100}.Counter{i % 100}" for i in range(COUNT)]
    plc = PlcServer(free_port(), {n: (ua.VariantType.UInt32, i) for i, n in enumerate(names)})
    plc.batch_limit = 500
    await plc.start()
    try:
        source = opcua_source(plc, [plc.address(n) for n in names], publishing_interval_ms=100)
        async with fast_collector(source) as collector:
            readings = collector.readings()
            await collect_until(
                readings, complete({plc.address(n): i for i, n in enumerate(names)}), 60
            )
            assert plc.item_batches == [500] * (COUNT // 500)

            for i, name in enumerate(names):
                await plc.write(name, i + 1_000_000)
            await collect_until(
                readings, complete({plc.address(n): i + 1_000_000 for i, n in enumerate(names)}), 60
            )
            assert collector.health.rejected == 0
            assert plc.sessions_created == 1
    finally:
        await plc.stop()
