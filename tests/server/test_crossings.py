"""Milestone crossings, exactly once: the detector alone, then the server against real Mosquitto
and a real influxd (duplicates, out-of-order updates, restarts, two replicas, steps)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt

from server.app import Server
from server.crossings import Crossing, CrossingDetector, crossed_values
from server.influx_http import InfluxHttpWriter
from server.milestone_influx import point
from server.store import StateStore
from taktline.config import InfluxV1, InfluxV2, ServerConfig
from taktline.livebus import MILESTONE_SUBSCRIPTION, MilestoneMessage
from taktline.localbroker import free_port
from taktline.model import MqttConnection, Plant, SecretRef
from taktline.model.milestones import Milestone
from taktline.mqttclient import mqtt_client
from tests.fixtures.services import InfluxService, MosquittoService, run_victoria_metrics
from tests.server.conftest import (
    FA1,
    FA2,
    PAINT1,
    WEDNESDAY_10,
    PinnedClock,
    Publish,
    eventually,
    publish_counter,
)

T0 = WEDNESDAY_10.astimezone(dt.UTC)
SITE_30M = "site-30m"
EVERY_MILLION = "site-every-million"


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def detector(plant: Plant) -> CrossingDetector:
    return CrossingDetector(plant.milestones, (path for path, _ in plant.counters()))


def keys(crossings: list[Crossing]) -> list[tuple[str, int]]:
    return [crossing.key for crossing in crossings]


# --- the detector alone ---------------------------------------------------------------------


def test_a_step_crosses_every_multiple_it_passes_and_a_threshold_once() -> None:
    step = Milestone(id="m", scope="s", counter="c", every=1000)
    threshold = Milestone(id="t", scope="s", counter="c", threshold=5000)
    assert crossed_values(step, 999, 1000) == [1000]
    assert crossed_values(step, 1000, 1999) == []
    assert crossed_values(step, 1500, 4200) == [2000, 3000, 4000]
    assert crossed_values(step, 4200, 4100) == []
    assert crossed_values(threshold, 4999, 5000) == [5000]
    assert crossed_values(threshold, 5000, 9000) == []
    assert crossed_values(threshold, 100, 4999) == []


def test_a_counter_heard_of_for_the_first_time_only_primes(plant: Plant) -> None:
    crossings = detector(plant)
    assert crossings.update(FA1, 31_000_000, at(0)) == []
    assert crossings.total(SITE_30M) == 31_000_000
    assert crossings.update(FA2, 500, at(1)) == []  # first message of fa2: primes as well
    assert crossings.total(SITE_30M) == 31_000_500
    assert crossings.update(PAINT1, 40_000_000, at(2)) == []  # `produced`: in no scope
    assert crossings.total(SITE_30M) == 31_000_500


def test_duplicates_and_older_totals_cross_nothing_again(plant: Plant) -> None:
    crossings = detector(plant)
    crossings.update(FA1, 29_999_000, at(0))
    crossings.update(FA2, 900, at(0))
    crossed = crossings.update(FA2, 1_000, at(10))
    assert sorted(keys(crossed)) == [(SITE_30M, 30_000_000), (EVERY_MILLION, 30_000_000)]
    assert {(c.counter, c.ts) for c in crossed} == {(FA2, at(10))}
    assert crossings.update(FA2, 1_000, at(10)) == []  # duplicate
    assert crossings.update(FA2, 950, at(5)) == []  # older, arriving late
    assert crossings.total(SITE_30M) == 30_000_000  # not lowered
    assert crossings.update(FA2, 999, at(6)) == []
    assert crossings.update(FA2, 1_001, at(11)) == []
    assert crossings.total(SITE_30M) == 30_000_001


def test_restored_totals_cross_on_a_higher_first_message_and_never_twice(plant: Plant) -> None:
    crossings = detector(plant)
    crossings.restore({FA1: 29_999_000, FA2: 950}, [(EVERY_MILLION, 29_000_000)])
    assert crossings.update(FA1, 29_999_000, at(0)) == []  # the retained message, as stored
    crossed = crossings.update(FA2, 1_000, at(20))
    assert sorted(keys(crossed)) == [(SITE_30M, 30_000_000), (EVERY_MILLION, 30_000_000)]

    again = detector(plant)  # a store that knows the crossing but lost fa2's total
    again.restore({FA1: 29_999_000}, [(SITE_30M, 30_000_000), (EVERY_MILLION, 30_000_000)])
    again.update(FA2, 900, at(0))
    assert again.update(FA2, 1_000, at(20)) == []


def test_changes_are_taken_once_and_given_back_when_the_store_fails(plant: Plant) -> None:
    crossings = detector(plant)
    crossings.update(FA1, 29_999_000, at(0))
    crossings.update(FA2, 999, at(0))
    crossings.update(FA2, 1_000, at(1))
    changes = crossings.take_changes()
    assert dict(changes.totals) == {FA1: 29_999_000, FA2: 1_000}
    assert len(changes.crossings) == 2
    assert not crossings.take_changes()
    crossings.give_back(changes)
    crossings.update(FA2, 1_004, at(2))
    again = crossings.take_changes()
    assert dict(again.totals) == {FA1: 29_999_000, FA2: 1_004}
    assert again.crossings == changes.crossings


def test_a_crossing_is_one_point_with_its_value_as_a_tag_and_the_update_time() -> None:
    crossing = Crossing(
        milestone=SITE_30M,
        name='30,000,000 "vehicles"',
        value=30_000_000,
        scope="neustadt",
        counter=FA2,
        ts=dt.datetime(2026, 11, 25, 9, 0, 0, 123456, tzinfo=dt.UTC),
        total=30_000_002,
    )
    assert point(crossing) == (
        "milestone,crossing=30000000,line=fa2,milestone=site-30m,scope=neustadt,site=neustadt"
        ' name="30,000,000 \\"vehicles\\"",threshold=30000000i,total=30000002i'
        " 1795597200123456000"
    )


# --- the server against real services ---------------------------------------------------------


@contextlib.asynccontextmanager
async def celebrations(mosquitto: MosquittoService) -> AsyncIterator[list[aiomqtt.Message]]:
    """Every milestone message on the live bus while the block runs."""
    received: list[aiomqtt.Message] = []
    connection = MqttConnection(host=mosquitto.host, port=mosquitto.port)
    async with mqtt_client(connection) as client:
        await client.subscribe(MILESTONE_SUBSCRIPTION, qos=1)

        async def read() -> None:
            async for message in client.messages:
                received.append(message)

        task = asyncio.create_task(read())
        try:
            yield received
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def bodies(received: list[aiomqtt.Message], milestone: str) -> list[MilestoneMessage]:
    return [
        MilestoneMessage.model_validate_json(bytes(message.payload))
        for message in received
        if message.topic.value == f"taktline/v1/_milestones/{milestone}"
    ]


async def until(check: Any) -> None:
    async def poll() -> bool:
        return bool(check())

    await eventually(poll)


def with_influx(config: ServerConfig, url: str, database: str, state: Path) -> ServerConfig:
    influx = InfluxV1(api="v1", url=url, database=database, timeout_s=2)
    settings = config.settings.model_copy(update={"influxdb": influx, "state_dir": state})
    return ServerConfig(settings, config.plant)


async def test_duplicate_and_out_of_order_updates_cross_once(
    server_config: ServerConfig, clock: PinnedClock, publish: Publish, mosquitto: MosquittoService
) -> None:
    async with celebrations(mosquitto) as received, Server(server_config, clock=clock) as server:
        await asyncio.wait_for(server.listener.connected.wait(), 10)
        await publish_counter(publish, FA1, 29_999_000, 1, at(0))
        await publish_counter(publish, FA2, 900, 1, at(0))
        await publish_counter(publish, FA2, 1_000, 100, at(10))  # crosses 30,000,000
        await publish_counter(publish, FA2, 1_000, 100, at(10))  # duplicate
        await publish_counter(publish, FA2, 950, 50, at(5))  # older, arriving late
        await publish_counter(publish, FA2, 1_001, 1, at(11))
        await until(lambda: server.crossings.total(SITE_30M) == 30_000_001)
        await until(lambda: server.milestones.published == 2)
        await asyncio.sleep(0.5)  # time for a wrong second crossing to show up
        stored = sorted(await asyncio.to_thread(server.store.crossed))
    [threshold] = bodies(received, SITE_30M)
    [step] = bodies(received, EVERY_MILLION)
    assert threshold == MilestoneMessage(
        milestone=SITE_30M,
        name="30,000,000 vehicles",
        value=30_000_000,
        scope="neustadt",
        line="fa2",
        ts=at(10),
    )
    assert (step.value, step.line, step.ts, step.name) == (30_000_000, "fa2", at(10), EVERY_MILLION)
    assert not any(message.retain for message in received)
    assert stored == [(SITE_30M, 30_000_000), (EVERY_MILLION, 30_000_000)]


async def test_a_restart_crosses_what_passed_while_down_once_and_replays_nothing(
    server_config: ServerConfig, clock: PinnedClock, publish: Publish, mosquitto: MosquittoService
) -> None:
    async with celebrations(mosquitto) as received:
        async with Server(server_config, clock=clock) as first:
            await asyncio.wait_for(first.listener.connected.wait(), 10)
            await publish_counter(publish, FA1, 29_999_000, 1, at(0))
            await publish_counter(publish, FA2, 900, 1, at(0))
            await publish_counter(publish, FA2, 950, 50, at(5))
            await until(lambda: first.crossings.total(SITE_30M) == 29_999_950)
        assert first.milestones.published == 0
        await publish_counter(publish, FA2, 1_000, 50, at(20))  # while no server runs

        async with Server(server_config, clock=clock) as second:
            await until(lambda: second.milestones.published == 2)
        assert [b.ts for b in bodies(received, SITE_30M)] == [at(20)]
        assert [b.line for b in bodies(received, EVERY_MILLION)] == ["fa2"]

        # the edges publish their retained totals again: a third start crosses nothing
        await publish_counter(publish, FA1, 29_999_000, 1, at(0))
        await publish_counter(publish, FA2, 1_000, 50, at(20))
        async with Server(server_config, clock=clock) as third:
            await until(lambda: third.board.accepted >= 2)
            await asyncio.sleep(0.5)
            assert third.crossings.total(SITE_30M) == 30_000_000
            assert third.milestones.published == 0
    assert len(received) == 2
    with StateStore(server_config.settings.state_dir) as store:
        assert sorted(store.crossed()) == [(SITE_30M, 30_000_000), (EVERY_MILLION, 30_000_000)]
        assert store.milestone_totals() == {FA1: 29_999_000, FA2: 1_000}


async def test_two_replicas_announce_twice_and_write_one_point(
    server_config: ServerConfig,
    clock: PinnedClock,
    publish: Publish,
    mosquitto: MosquittoService,
    influxd: InfluxService,
    tmp_path: Path,
) -> None:
    database = "milestones_replicas"
    configs = [
        with_influx(server_config, influxd.url, database, tmp_path / name) for name in ("a", "b")
    ]
    async with (
        celebrations(mosquitto) as received,
        Server(configs[0], clock=clock) as one,
        Server(configs[1], clock=clock) as two,
    ):
        for server in (one, two):
            await asyncio.wait_for(server.listener.connected.wait(), 10)
        await publish_counter(publish, FA1, 29_999_000, 1, at(0))
        await publish_counter(publish, FA2, 900, 1, at(0))
        await publish_counter(publish, FA2, 1_000, 100, at(10))
        await until(lambda: one.milestones.written == two.milestones.written == 2)
        await until(lambda: len(received) == 4)
    assert [(b.value, b.line, b.ts) for b in bodies(received, SITE_30M)] == [
        (30_000_000, "fa2", at(10))
    ] * 2
    [row] = influxd.query(
        "SELECT count(threshold) FROM milestone WHERE milestone = 'site-30m'", database
    )
    assert row["count"] == 1
    [written] = influxd.query("SELECT * FROM milestone WHERE milestone = 'site-30m'", database)
    assert written["time"] == int(at(10).timestamp()) * 1_000_000_000
    assert (written["threshold"], written["name"]) == (30_000_000, "30,000,000 vehicles")
    assert written["total"] >= 30_000_000  # the site's total right after the crossing update
    assert (written["site"], written["line"], written["scope"]) == ("neustadt", "fa2", "neustadt")
    [everything] = influxd.query("SELECT count(threshold) FROM milestone", database)
    assert everything["count"] == 2  # the threshold and the step's 30,000,000


async def test_a_step_passed_several_times_by_one_update_crosses_each_value(
    server_config: ServerConfig,
    clock: PinnedClock,
    publish: Publish,
    mosquitto: MosquittoService,
    influxd: InfluxService,
    tmp_path: Path,
) -> None:
    database = "milestones_steps"
    config = with_influx(server_config, influxd.url, database, tmp_path / "state")
    async with celebrations(mosquitto) as received, Server(config, clock=clock) as server:
        await asyncio.wait_for(server.listener.connected.wait(), 10)
        await publish_counter(publish, FA1, 1_500_000, 1, at(0))
        await publish_counter(publish, FA2, 0, 0, at(0))
        await publish_counter(publish, FA1, 4_200_000, 2_700_000, at(30))  # after an outage
        await until(lambda: server.milestones.written == 3)
        await until(lambda: len(received) == 3)
    steps = bodies(received, EVERY_MILLION)
    assert [(b.value, b.line, b.ts) for b in steps] == [
        (2_000_000, "fa1", at(30)),
        (3_000_000, "fa1", at(30)),
        (4_000_000, "fa1", at(30)),
    ]
    rows = influxd.query("SELECT threshold, crossing FROM milestone", database)
    assert sorted(row["threshold"] for row in rows) == [2_000_000, 3_000_000, 4_000_000]
    assert {row["time"] for row in rows} == {int(at(30).timestamp()) * 1_000_000_000}


async def test_a_point_influxdb_refused_is_written_after_a_restart(
    server_config: ServerConfig,
    clock: PinnedClock,
    publish: Publish,
    influxd: InfluxService,
    tmp_path: Path,
) -> None:
    database = "milestones_pending"
    state = tmp_path / "state"
    nowhere = with_influx(server_config, f"http://127.0.0.1:{free_port()}", database, state)
    async with Server(nowhere, clock=clock) as first:
        await asyncio.wait_for(first.listener.connected.wait(), 10)
        await publish_counter(publish, FA1, 29_999_000, 1, at(0))
        await publish_counter(publish, FA2, 900, 1, at(0))
        await publish_counter(publish, FA2, 1_000, 100, at(10))
        await until(lambda: first.milestones.published == 2)
        pending = await asyncio.to_thread(first.store.pending_crossings, "written")
    assert first.milestones.written == 0
    assert sorted(c.key for c in pending) == [(SITE_30M, 30_000_000), (EVERY_MILLION, 30_000_000)]

    async with Server(
        with_influx(server_config, influxd.url, database, state), clock=clock
    ) as again:
        await until(lambda: again.milestones.written == 2)
        assert await asyncio.to_thread(again.store.pending_crossings, "written") == []
    [row] = influxd.query("SELECT count(threshold) FROM milestone", database)
    assert row["count"] == 2
    assert again.milestones.published == 0  # published by the first run already


async def test_the_v2_api_takes_the_points_with_their_tags_and_time(tmp_path: Path) -> None:
    crossing = Crossing(
        milestone=EVERY_MILLION,
        name=EVERY_MILLION,
        value=3_000_000,
        scope="neustadt",
        counter=FA1,
        ts=at(30),
        total=3_000_001,
    )
    secret = tmp_path / "token"
    secret.write_text("t0ken", encoding="utf-8")
    settings = InfluxV2(
        api="v2", url="", org="plant", bucket="taktline", token=SecretRef(file=secret)
    )
    with run_victoria_metrics(tmp_path) as victoria:
        async with InfluxHttpWriter(settings.model_copy(update={"url": victoria.url})) as influx:
            await influx.write([point(crossing)])
            await influx.write([point(crossing)])  # again, as a second replica would
        [series] = await asyncio.to_thread(victoria.export, "milestone_threshold")
    assert series["metric"] == {
        "__name__": "milestone_threshold",
        "crossing": "3000000",
        "line": "fa1",
        "milestone": EVERY_MILLION,
        "scope": "neustadt",
        "site": "neustadt",
    }
    assert set(series["timestamps"]) == {int(at(30).timestamp() * 1000)}
    assert set(series["values"]) == {3_000_000}
