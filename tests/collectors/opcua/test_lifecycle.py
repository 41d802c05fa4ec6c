"""Sessions and subscriptions against a real asyncua server: cuts, restarts, silence, groups."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable

import pytest

from edge.counters import TotalCounter
from taktline.model.sources import OpcUaSource
from taktline.records import Quality, Reading
from tests.collectors.conftest import PASSED, TESTED, fast_collector, opcua_source
from tests.collectors.helpers import collect_until, latest, wait_for
from tests.collectors.plc import PlcServer


class Counting:
    """A PLC register counting up every `period_s` (also while the server is down)."""

    def __init__(self, plc: PlcServer, name: str, period_s: float = 0.02) -> None:
        self.plc, self.name, self.period_s = plc, name, period_s
        self.value = plc.variables[name][1]
        self._task: asyncio.Task[None] | None = None

    async def _count(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            self.value += 1
            await self.plc.write(self.name, self.value)

    async def __aenter__(self) -> Counting:
        self._task = asyncio.create_task(self._count())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.wait([self._task])


class Tap:
    """Takes every reading in the background (cancelling a wait inside the readings' async
    iterator would end it), so a test can wait, act and look at what arrived meanwhile."""

    def __init__(self, readings: AsyncIterator[Reading]) -> None:
        self.seen: list[Reading] = []
        self._task = asyncio.create_task(self._take(readings))

    async def _take(self, readings: AsyncIterator[Reading]) -> None:
        async for reading in readings:
            self.seen.append(reading)

    async def until(
        self, done: Callable[[list[Reading]], bool], what: str, timeout_s: float = 15
    ) -> None:
        await wait_for(lambda: done(self.seen), what, timeout_s)

    def close(self) -> None:
        self._task.cancel()


def good_values(readings: list[Reading], address: str) -> list[int]:
    return [
        r.value
        for r in readings
        if r.address == address and r.quality is Quality.GOOD and r.value is not None
    ]


async def test_a_network_cut_resumes_the_session_and_republishes_every_missed_change(
    plc: PlcServer,
) -> None:
    address = plc.address(PASSED)
    start = plc.variables[PASSED][1]
    async with fast_collector(opcua_source(plc, [address], queue_size=1000)) as collector:
        tap = Tap(collector.readings())
        await tap.until(lambda seen: good_values(seen, address) == [start], "the current value")
        async with Counting(plc, PASSED) as counting:
            await asyncio.sleep(0.5)
            plc.cut()
            await wait_for(lambda: collector.health.reconnects == 1, "reconnected")
            await asyncio.sleep(0.5)
        final = counting.value
        await tap.until(lambda seen: good_values(seen, address)[-1] == final, "the last count")
        tap.close()

        assert good_values(tap.seen, address) == list(range(start, final + 1))  # each once
        assert final - start > 30
        assert plc.sessions_created == 1  # the session was resumed, not created again
        assert collector.health.connected


async def test_a_restart_with_reordered_namespaces_loses_and_doubles_no_unit(
    plc: PlcServer,
) -> None:
    address = plc.uri_address(PASSED)
    before = plc.namespace_index
    async with fast_collector(opcua_source(plc, [address], queue_size=1000)) as collector:
        tap = Tap(collector.readings())
        await tap.until(lambda seen: bool(seen), "the current value")
        async with Counting(plc, PASSED) as counting:
            await asyncio.sleep(0.5)
            await plc.stop()
            await asyncio.sleep(0.5)  # the PLC counts on while its server is down
            plc.namespaces_before = ["urn:other:first", "urn:other:second"]
            await plc.start()
            await wait_for(lambda: collector.health.reconnects == 1, "reconnected", 20)
            await asyncio.sleep(0.5)
        final = counting.value
        await tap.until(lambda seen: good_values(seen, address)[-1] == final, "the last count")
        tap.close()
    assert plc.namespace_index == before + 2  # the index moved; nsu= followed it

    total = TotalCounter(32)
    for reading in tap.seen:
        assert reading.address == address
        ns = int(reading.received_at.timestamp() * 1e9)
        total.step(reading.value, reading.quality, ns, ns)
    assert total.total == final  # the register's count: nothing lost, nothing counted twice


@pytest.mark.filterwarnings("ignore:coroutine 'MonitoredItemService.datachange_callback'")
async def test_a_node_removed_and_added_back_is_bad_then_good_in_the_same_session(
    plc: PlcServer,
) -> None:
    passed, tested = plc.address(PASSED), plc.address(TESTED)
    async with fast_collector(opcua_source(plc, [passed, tested])) as collector:
        readings = collector.readings()
        await collect_until(readings, lambda seen: {passed, tested} <= latest(seen).keys())

        await plc.remove(PASSED)
        gone = await collect_until(
            readings,
            lambda seen: any(r.address == passed and r.quality is Quality.BAD for r in seen),
        )
        assert gone[-1].value is None
        await plc.write(TESTED, 7)  # the other node keeps flowing
        await collect_until(readings, lambda seen: 7 in good_values(seen, tested))

        await plc.add(PASSED)
        back = await collect_until(
            readings, lambda seen: seen[-1].address == passed and seen[-1].value is not None
        )
        assert (back[-1].quality, back[-1].value) == (Quality.GOOD, 16_250_210)
        await plc.write(PASSED, 16_250_211)
        await collect_until(readings, lambda seen: seen[-1].value == 16_250_211)
        assert plc.sessions_created == 1


async def test_a_server_that_stops_publishing_is_noticed_and_resubscribed(
    plc: PlcServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="collectors")
    address = plc.address(PASSED)
    async with fast_collector(opcua_source(plc, [address])) as collector:
        readings = collector.readings()
        await collect_until(readings, lambda seen: seen[-1].value == 16_250_210)

        plc.pause_publishing()  # connection, session and reads stay fine
        await plc.write(PASSED, 16_250_300)
        paused_at = dt.datetime.now(dt.UTC)
        after = await collect_until(readings, lambda seen: seen[-1].value == 16_250_300, 20)
        assert after[-1].received_at - paused_at > dt.timedelta(seconds=2)  # noticed, not sent
        assert (collector.health.resubscribes, collector.health.reconnects) == (1, 0)
        assert plc.sessions_created == 1  # the subscription was rebuilt, not the session
        assert "silent" in caplog.text

        await plc.write(PASSED, 16_250_301)
        await collect_until(readings, lambda seen: seen[-1].value == 16_250_301)


async def test_closing_while_the_server_does_not_answer_ends_the_collector(
    plc: PlcServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Leaving cancels the collector; its goodbye to a server that does not answer times out,
    and that timeout must not turn the cancellation into a reconnect (the edge would never
    stop)."""
    caplog.set_level(logging.INFO, logger="collectors")
    address = plc.address(PASSED)
    collector = fast_collector(opcua_source(plc, [address]))
    async with asyncio.timeout(60):  # a collector that never ends fails here
        async with collector:
            readings = collector.readings()
            await collect_until(readings, lambda seen: seen[-1].value == 16_250_210)
            plc.hang()
    assert "reconnecting" not in caplog.text and "connection lost" not in caplog.text
    assert collector.health.connected is False


async def test_nodes_with_other_settings_get_their_own_subscription_and_filter(
    plc: PlcServer,
) -> None:
    passed, tested = plc.address(PASSED), plc.address(TESTED)
    source = OpcUaSource.model_validate(
        {
            "type": "opcua",
            "id": "plc-test",
            "endpoint": plc.endpoint,
            "publishing_interval_ms": 50,
            "groups": {"coarse": {"publishing_interval_ms": 120, "deadband": 3}},
            "nodes": [
                {"node": passed, "counter": "s/a/l/st/passed"},
                {"node": tested, "counter": "s/a/l/st/tested", "group": "coarse"},
            ],
        }
    )
    async with fast_collector(source) as collector:
        readings = collector.readings()
        await collect_until(readings, lambda seen: {passed, tested} <= latest(seen).keys())
        assert sorted(plc.publishing_intervals()) == [50.0, 120.0]

        await plc.write(TESTED, 65_532)  # within the deadband of 3: not sent
        await plc.write(PASSED, 16_250_211)
        await plc.write(TESTED, 65_520)  # beyond it: sent
        got = await collect_until(readings, lambda seen: 65_520 in good_values(seen, tested))
        assert 65_532 not in good_values(got, tested)
        assert 16_250_211 in good_values(got, passed)
