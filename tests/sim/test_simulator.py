"""The simulator against real clients: asyncua over OPC UA and aiomqtt on a real Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import aiomqtt
import pytest
from asyncua import ua
from asyncua.client.client import Client

from taktline.model import CounterPath, MqttSource, OpcUaSource, Plant
from taktline.sim import PlantSimulator, SimulatorError, relocate
from tests.fixtures.services import MosquittoService
from tests.fixtures.sim import only_sources, running_simulator

pytestmark = pytest.mark.integration

FA1_TESTED = CounterPath("neustadt", "final", "fa1", "eol", "tested")
FA2_TESTED = CounterPath("neustadt", "final", "fa2", "eol", "tested")
TOPCOAT = CounterPath("neustadt", "paint", "paint1", "topcoat", "produced")
EOL_FA1, EOL_FA2, PAINT_MQTT = "eol-fa1", "eol-fa2", "paint-mqtt"
PAINT_TOPIC = "plant/neustadt/paint1/topcoat/produced"
WAIT_S = 20.0


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll an async check until it holds (generous timeout, no speed assertion)."""
    try:
        async with asyncio.timeout(WAIT_S):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{what}: not within {WAIT_S} s") from None


def opcua_sources(plant: Plant) -> list[OpcUaSource]:
    return [source for source in plant.sources if isinstance(source, OpcUaSource)]


async def read_nodes(plant: Plant) -> dict[CounterPath, ua.DataValue]:
    """Every mapped node of every OPC UA source, read by a real client."""
    values: dict[CounterPath, ua.DataValue] = {}
    for source in opcua_sources(plant):
        async with Client(source.endpoint, timeout=10) as client:
            for node in source.nodes:
                data = await client.get_node(node.node).read_data_value()
                values[CounterPath.parse(node.counter)] = data
    return values


async def read_counts(plant: Plant) -> dict[CounterPath, int]:
    counts: dict[CounterPath, int] = {}
    for path, data in (await read_nodes(plant)).items():
        assert data.Value is not None
        counts[path] = data.Value.Value
    return counts


async def test_opcua_nodes_carry_the_registers_with_their_widths(
    mosquitto: MosquittoService, example_plant: Plant
) -> None:
    async with running_simulator(example_plant, mosquitto.port, seed=7, paused=True) as (
        plant,
        sim,
    ):
        before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60)
        values = await read_nodes(plant)
        raw = sim.raw()
        assert set(values) == {path for path, _ in example_plant.counters() if path != TOPCOAT}
        for path, data in values.items():
            expected = ua.VariantType.UInt16 if path.line == "fa1" else ua.VariantType.UInt32
            assert data.Value is not None and data.StatusCode is not None
            assert data.Value.VariantType is expected
            assert data.Value.Value == raw[path]
            assert data.StatusCode.is_good()
            assert data.SourceTimestamp is not None and data.SourceTimestamp > before
            assert data.ServerTimestamp is not None and data.ServerTimestamp > before
        async with Client(opcua_sources(plant)[0].endpoint, timeout=10) as client:
            browse_path = ["2:neustadt", "2:final", "2:fa1", "2:eol", "2:tested"]
            node = await client.nodes.objects.get_child(browse_path)
            assert node.nodeid == ua.NodeId.from_string("ns=2;s=FA1.EOL.Tested")
            assert await node.read_data_type_as_variant_type() is ua.VariantType.UInt16


async def test_values_rise_while_running_and_stop_when_paused(
    mosquitto: MosquittoService, example_plant: Plant
) -> None:
    fa2_only = only_sources(example_plant, EOL_FA2)
    async with running_simulator(fa2_only, mosquitto.port, rate_per_min=600, seed=1) as (
        plant,
        sim,
    ):
        start = (await read_counts(plant))[FA2_TESTED]

        async def risen() -> bool:
            return (await read_counts(plant))[FA2_TESTED] > start

        await eventually(risen, "fa2 tested rises while running")
        sim.pause()
        await sim.settle()
        frozen = await read_counts(plant)
        await asyncio.sleep(0.5)
        assert await read_counts(plant) == frozen
        assert frozen == {path: value for path, value in sim.raw().items() if path.line == "fa2"}
        start = frozen[FA2_TESTED]
        sim.resume()
        await eventually(risen, "fa2 tested rises again after resume")


async def test_a_sixteen_bit_register_rolls_over_and_truth_is_the_increase(
    mosquitto: MosquittoService, example_plant: Plant
) -> None:
    fa1_only = only_sources(example_plant, EOL_FA1)
    async with running_simulator(
        fa1_only, mosquitto.port, rate_per_min=12_000, seed=2, paused=True
    ) as (plant, sim):
        start = sim.raw()
        assert start[FA1_TESTED] > 65_000
        sim.resume()

        async def rolled_over() -> bool:
            return sim.stats.rollovers_by_counter[FA1_TESTED] >= 1

        await eventually(rolled_over, "fa1 tested rolls over")
        sim.pause()
        await sim.settle()
        counts, raw, truth = await read_counts(plant), sim.raw(), sim.ground_truth()
        assert counts[FA1_TESTED] == raw[FA1_TESTED] < start[FA1_TESTED]
        assert truth[FA1_TESTED] >= 65_536 - start[FA1_TESTED]  # it counted up to the wrap
        for path, counter in example_plant.counters():
            assert truth[path] == (raw[path] - start[path]) % 2**counter.width, path
        for line in ("fa1", "fa2"):
            line_truth = {p.counter: n for p, n in truth.items() if p.line == line}
            assert line_truth["passed"] + line_truth["failed"] == line_truth["tested"]
        assert sim.stats.resets == 0


async def test_a_forced_reset_zeroes_the_registers_and_keeps_the_truth(
    mosquitto: MosquittoService, example_plant: Plant
) -> None:
    fa2_only = only_sources(example_plant, EOL_FA2)
    async with running_simulator(fa2_only, mosquitto.port, rate_per_min=600, seed=3) as (
        plant,
        sim,
    ):

        async def counted() -> bool:
            return sim.ground_truth()[FA2_TESTED] >= 3

        await eventually(counted, "fa2 counts units")
        sim.pause()
        await sim.settle()
        truth = sim.ground_truth()
        await sim.reset_station("fa2", "eol")
        counts = await read_counts(plant)
        assert {p.counter: v for p, v in counts.items()} == {
            "tested": 0,
            "passed": 0,
            "failed": 0,
        }
        assert sim.raw()[FA1_TESTED] > 0
        assert sim.ground_truth() == truth
        assert sim.stats.resets == 1
        with pytest.raises(KeyError):
            await sim.reset_station("fa2", "no-such-station")


async def test_random_resets_happen_and_stop_while_paused(
    mosquitto: MosquittoService, example_plant: Plant
) -> None:
    async with running_simulator(
        only_sources(example_plant, PAINT_MQTT),  # no OPC UA: it starts slower
        mosquitto.port,
        rate_per_min=3_000,
        seed=4,
        reset_every_s=0.2,
        pass_ratio=0.5,
    ) as (_plant, sim):

        async def reset_twice() -> bool:
            return sim.stats.resets >= 2

        await eventually(reset_twice, "stations reset at random")
        sim.pause()
        await sim.settle()
        stats, truth = sim.stats, sim.ground_truth()
        await asyncio.sleep(0.8)
        assert sim.stats == stats
        for line in ("fa1", "fa2"):
            line_truth = {p.counter: n for p, n in truth.items() if p.line == line}
            assert line_truth["passed"] + line_truth["failed"] == line_truth["tested"]
            assert line_truth["tested"] > 0


async def test_a_stopped_line_makes_nothing_while_the_others_go_on(
    mosquitto: MosquittoService, example_plant: Plant
) -> None:
    async with running_simulator(
        only_sources(example_plant, PAINT_MQTT), mosquitto.port, rate_per_min=600, seed=6
    ) as (_plant, sim):
        sim.stop_line("fa1")
        stopped = sim.ground_truth()[FA1_TESTED]
        start = sim.ground_truth()[FA2_TESTED]

        async def fa2_made_30() -> bool:  # 3 s at 10 units/s: fa1 would have made some
            return sim.ground_truth()[FA2_TESTED] >= start + 30

        await eventually(fa2_made_30, "fa2 goes on while fa1 is stopped")
        assert sim.ground_truth()[FA1_TESTED] == stopped
        assert not sim.paused
        sim.resume_line("fa1")

        async def fa1_counts_again() -> bool:
            return sim.ground_truth()[FA1_TESTED] > stopped

        await eventually(fa1_counts_again, "fa1 counts again after resume_line")
        with pytest.raises(KeyError):
            sim.stop_line("no-such-line")


def unpacked(message: aiomqtt.Message) -> tuple[int, dt.datetime]:
    assert isinstance(message.payload, bytes)
    body = json.loads(message.payload)
    return body["count"], dt.datetime.fromisoformat(body["ts"])


async def latest_is(received: list[aiomqtt.Message], count: int) -> bool:
    return bool(received) and unpacked(received[-1])[0] == count


@contextlib.asynccontextmanager
async def inbox(mosquitto: MosquittoService) -> AsyncIterator[list[aiomqtt.Message]]:
    """Every message on the paint topic from now on, collected in the background."""
    received: list[aiomqtt.Message] = []

    async def collect(client: aiomqtt.Client) -> None:
        async for message in client.messages:
            received.append(message)

    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
        await client.subscribe(PAINT_TOPIC, qos=1)
        task = asyncio.create_task(collect(client))
        try:
            yield received
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_mqtt_json_counts_reach_the_broker_and_survive_its_restart(
    mosquitto: MosquittoService, example_plant: Plant
) -> None:
    paint_only = only_sources(example_plant, PAINT_MQTT)
    async with running_simulator(paint_only, mosquitto.port, rate_per_min=600, seed=5) as (
        _,
        sim,
    ):
        async with inbox(mosquitto) as received:

            async def three_live() -> bool:
                return sum(not message.retain for message in received) >= 3

            await eventually(three_live, "three messages while running")
            counts = [unpacked(message)[0] for message in received]
            assert counts == sorted(counts)
            for message in received:
                moment = unpacked(message)[1]
                assert moment.utcoffset() == dt.timedelta(0)
                assert abs(dt.datetime.now(dt.UTC) - moment) < dt.timedelta(minutes=5)
            sim.pause()
            await sim.settle()
            await eventually(lambda: latest_is(received, sim.raw()[TOPCOAT]), "the latest count")
            await sim.reset_station("paint1", "topcoat")
            await sim.settle()
            await eventually(lambda: latest_is(received, 0), "the reset arrives")

        sim.resume()
        await asyncio.to_thread(mosquitto.stop)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(mosquitto.start)
        async with inbox(mosquitto) as received:

            async def live() -> bool:
                return any(not message.retain for message in received)

            await eventually(live, "messages again after the broker's restart")
            sim.pause()
            await asyncio.wait_for(sim.settle(), WAIT_S)
            await eventually(lambda: latest_is(received, sim.raw()[TOPCOAT]), "the latest count")


def test_a_mapping_to_an_unknown_counter_is_refused(example_plant: Plant) -> None:
    source = opcua_sources(example_plant)[0]
    node = source.nodes[0].model_copy(update={"counter": "neustadt/final/fa1/eol/nope"})
    broken = example_plant.model_copy(
        update={"sources": [source.model_copy(update={"nodes": [node]})]}
    )
    with pytest.raises(SimulatorError, match="maps unknown counter 'neustadt/final/fa1/eol/nope'"):
        PlantSimulator(broken)


def test_colliding_json_paths_are_refused(example_plant: Plant) -> None:
    plant = only_sources(example_plant, PAINT_MQTT)
    source = plant.sources[0]
    assert isinstance(source, MqttSource)
    topic = source.topics[0].model_copy(update={"value": "data", "timestamp": "data.ts"})
    broken = plant.model_copy(update={"sources": [source.model_copy(update={"topics": [topic]})]})
    with pytest.raises(SimulatorError, match=r"source 'paint-mqtt', topic 'plant/neustadt/.*runs"):
        PlantSimulator(broken)


async def test_a_node_outside_the_simulator_namespace_is_refused(example_plant: Plant) -> None:
    source = opcua_sources(relocate(example_plant, mqtt_port=1))[0]
    node = source.nodes[0].model_copy(update={"node": "ns=3;s=FA1.EOL.Tested"})
    broken = example_plant.model_copy(
        update={"sources": [source.model_copy(update={"nodes": [node]})]}
    )
    with pytest.raises(SimulatorError, match=r"'ns=3;s=FA1.EOL.Tested' is in ns=3.*ns=2"):
        async with PlantSimulator(broken):
            pass
