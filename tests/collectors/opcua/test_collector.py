"""OpcUaCollector against a real asyncua server: values, qualities, restarts, batches."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from asyncua import ua

from collectors.opcua import OpcUaCollector
from collectors.support import Backoff
from taktline.model.sources import OpcUaSource
from taktline.records import Quality, Reading
from tests.collectors.conftest import FAILED, PASSED, TESTED
from tests.collectors.helpers import collect_until, latest, wait_for
from tests.collectors.plc import PlcServer


def source_for(plc: PlcServer, names: list[str] | None = None) -> OpcUaSource:
    names = names or [TESTED, PASSED, FAILED]
    return OpcUaSource.model_validate(
        {
            "type": "opcua",
            "id": "eol-fa1",
            "endpoint": plc.endpoint,
            "publishing_interval_ms": 50,
            "sampling_interval_ms": 25,
            "nodes": [
                {"node": plc.address(name), "counter": f"neustadt/final/fa1/eol/{name.lower()}"}
                for name in names
            ],
        }
    )


def collector_for(source: OpcUaSource) -> OpcUaCollector:
    return OpcUaCollector(
        source, backoff=Backoff(0.1, 1.0), request_timeout_s=2.0, watchdog_interval_s=0.5
    )


def has_values(expected: dict[str, int | None]) -> Callable[[list[Reading]], bool]:
    """A `done` predicate: the latest reading of each address has the expected value."""

    def done(seen: list[Reading]) -> bool:
        last = latest(seen)
        return all(a in last and last[a].value == v for a, v in expected.items())

    return done


async def test_current_values_then_changes_arrive_with_address_quality_and_times(
    plc: PlcServer,
) -> None:
    source = source_for(plc)
    async with collector_for(source) as collector:
        readings = collector.readings()
        start = dt.datetime.now(dt.UTC)
        initial = await collect_until(
            readings,
            has_values(
                {
                    plc.address(TESTED): 65_530,
                    plc.address(PASSED): 16_250_210,
                    plc.address(FAILED): 61_830,
                }
            ),
        )
        for reading in initial:
            assert reading.address in {node.node for node in source.nodes}
            assert reading.source_id == "eol-fa1"
            assert reading.quality is Quality.GOOD
            assert reading.source_ts is not None and reading.source_ts.tzinfo is not None
            assert reading.server_ts is not None and reading.server_ts.tzinfo is not None
            assert reading.received_at >= start
            assert reading.message_id is None

        await plc.write(TESTED, 65_535)
        await plc.write(TESTED, 3)  # rolled over: the collector passes the raw register on
        changed = await collect_until(readings, lambda seen: seen[-1].value == 3)
        assert [r.value for r in changed if r.address == plc.address(TESTED)][-2:] == [65_535, 3]
        assert collector.health.connected
        assert collector.health.last_data_at == changed[-1].received_at
        assert collector.health.reconnects == 0
        assert plc.sessions_created == 1


async def test_bad_status_travels_as_bad_and_uncertain_keeps_its_value(plc: PlcServer) -> None:
    async with collector_for(source_for(plc, [FAILED])) as collector:
        readings = collector.readings()
        await collect_until(readings, has_values({plc.address(FAILED): 61_830}))

        await plc.write_status(FAILED, ua.StatusCodes.BadSensorFailure)
        bad = (await collect_until(readings, lambda seen: True))[-1]
        assert (bad.quality, bad.value) == (Quality.BAD, None)
        assert bad.address == plc.address(FAILED)

        await plc.write_status(FAILED, ua.StatusCodes.UncertainLastUsableValue, 61_831)
        uncertain = (await collect_until(readings, lambda seen: True))[-1]
        assert (uncertain.quality, uncertain.value) == (Quality.UNCERTAIN, 61_831)

        await plc.write(FAILED, 61_832)
        good = (await collect_until(readings, lambda seen: True))[-1]
        assert (good.quality, good.value) == (Quality.GOOD, 61_832)
        assert collector.health.rejected == 0


async def test_server_restart_reconnects_with_one_session_and_delivers_current_values(
    plc: PlcServer,
) -> None:
    async with collector_for(source_for(plc)) as collector:
        readings = collector.readings()
        await collect_until(readings, has_values({plc.address(PASSED): 16_250_210}))

        await plc.stop()
        await wait_for(lambda: not collector.health.connected, "collector notices the stop")
        assert collector.health.last_error is not None
        await wait_for(lambda: "Connect" in (collector.health.last_error or ""), "retrying")

        plc.variables[PASSED] = (ua.VariantType.UInt32, 16_250_300)  # counted while down
        await plc.start()
        after = await collect_until(
            readings,
            has_values({plc.address(PASSED): 16_250_300, plc.address(TESTED): 65_530}),
        )
        assert all(r.quality is Quality.GOOD for r in after[-2:])
        assert collector.health.connected
        assert collector.health.reconnects == 1

        await plc.write(PASSED, 16_250_301)
        await collect_until(readings, has_values({plc.address(PASSED): 16_250_301}))
        assert (plc.sessions_created, plc.sessions_peak, plc.sessions_live) == (1, 1, 1)

    assert plc.sessions_live == 0  # closed on exit


async def test_node_unknown_after_restart_is_bad_then_monitored_once_it_exists(
    plc: PlcServer,
) -> None:
    async with collector_for(source_for(plc)) as collector:
        readings = collector.readings()
        await collect_until(readings, has_values({plc.address(FAILED): 61_830}))

        await plc.stop()
        await plc.start(without=[FAILED])  # the PLC program lacks the node for a while
        missing = await collect_until(
            readings,
            lambda seen: any(
                r.address == plc.address(FAILED) and r.quality is Quality.BAD for r in seen
            ),
        )
        assert missing[-1].value is None

        await plc.add(FAILED)
        back = await collect_until(readings, has_values({plc.address(FAILED): 61_830}))
        assert back[-1].quality is Quality.GOOD
        assert plc.sessions_created == 1  # retried inside the running session


async def test_monitored_items_are_created_in_batches_of_the_server_limit() -> None:
    from taktline.localbroker import free_port

    names = [f"Line.Counter{i}" for i in range(5)]
    plc = PlcServer(free_port(), {n: (ua.VariantType.UInt32, i) for i, n in enumerate(names)})
    plc.batch_limit = 2
    await plc.start()
    try:
        async with collector_for(source_for(plc, names)) as collector:
            await collect_until(
                collector.readings(), has_values({plc.address(n): i for i, n in enumerate(names)})
            )
        assert plc.item_batches == [2, 2, 1]
    finally:
        await plc.stop()


async def test_closing_ends_the_readings_and_the_session(plc: PlcServer) -> None:
    collector = collector_for(source_for(plc, [PASSED]))
    async with collector:
        readings = collector.readings()
        await collect_until(readings, has_values({plc.address(PASSED): 16_250_210}))
        assert plc.sessions_live == 1
    assert plc.sessions_live == 0
    assert [r async for r in readings] == []
    assert not collector.health.connected
