"""Polling mode against a real asyncua server that enforces MaxNodesPerRead."""

from __future__ import annotations

from asyncua import ua

from taktline.localbroker import free_port
from taktline.records import Quality
from tests.collectors.conftest import fast_collector, opcua_source
from tests.collectors.helpers import collect_until, latest
from tests.collectors.plc import PlcServer

NAMES = [f"Line.Counter{i}" for i in range(5)]


async def started_plc(read_limit: int) -> PlcServer:
    plc = PlcServer(free_port(), {n: (ua.VariantType.UInt32, 100 + i) for i, n in enumerate(NAMES)})
    plc.read_limit = read_limit
    await plc.start()
    return plc


async def test_polls_read_every_node_in_chunks_of_the_server_limit() -> None:
    plc = await started_plc(2)
    try:
        source = opcua_source(
            plc, [plc.address(n) for n in NAMES], mode="poll", poll_interval_ms=50
        )
        async with fast_collector(source) as collector:
            readings = collector.readings()
            first = await collect_until(readings, lambda seen: len(latest(seen)) == len(NAMES))
            assert {r.address: r.value for r in first} == {
                plc.address(n): 100 + i for i, n in enumerate(NAMES)
            }
            assert all(r.quality is Quality.GOOD and r.source_ts is not None for r in first)

            await plc.write(NAMES[4], 500)
            await collect_until(readings, lambda seen: seen[-1].value == 500)
        polled = [size for size in plc.reads if size > 1]
        assert polled and max(polled) == 2  # 5 nodes: reads of 2, 2 and 1 per poll
        assert plc.sessions_created == 1
    finally:
        await plc.stop()


async def test_a_refused_read_fails_its_chunk_only_and_an_unknown_node_is_bad() -> None:
    plc = await started_plc(2)
    try:
        plc.refuse_reads_of = {NAMES[0]}  # fails the read of NAMES[0] and NAMES[1]
        addresses = [plc.address(n) for n in NAMES] + [plc.address("Line.Missing")]
        source = opcua_source(plc, addresses, mode="poll", poll_interval_ms=50)
        async with fast_collector(source) as collector:
            readings = collector.readings()
            got = latest(await collect_until(readings, lambda seen: len(latest(seen)) == 6))
            assert [got[plc.address(n)].quality for n in NAMES] == [
                Quality.BAD,
                Quality.BAD,
                Quality.GOOD,
                Quality.GOOD,
                Quality.GOOD,
            ]
            missing = got[plc.address("Line.Missing")]
            assert (missing.quality, missing.value) == (Quality.BAD, None)

            await plc.write_status(NAMES[2], ua.StatusCodes.UncertainLastUsableValue, 7)
            await collect_until(
                readings,
                lambda seen: (
                    seen[-1].address == plc.address(NAMES[2])
                    and seen[-1].quality is Quality.UNCERTAIN
                ),
            )
            plc.refuse_reads_of = set()
            first = plc.address(NAMES[0])
            back = await collect_until(
                readings,
                lambda seen: any(r.address == first and r.quality is Quality.GOOD for r in seen),
            )
            assert latest(back)[first].value == 100
            assert collector.health.connected
    finally:
        await plc.stop()
