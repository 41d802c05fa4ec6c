"""Milestone crossings as Grafana annotations, against the Grafana contract server (Grafana
cannot run here): the payload, exactly one annotation across reruns, restarts and two replicas,
and a Grafana that is down, with real Mosquitto and influxd for the other outputs."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from server.app import Server
from server.crossings import Crossing, CrossingDetector, MilestoneChanges
from server.grafana.annotations import PlantNames, annotation
from server.grafana.client import GrafanaError, grafana_api
from server.grafana.exactly_once import ExactlyOnce, Wanted
from server.milestone_outputs import MilestoneOutputs
from server.store import StateStore
from taktline.config import InfluxV1, ServerConfig
from taktline.config.settings import GrafanaSettings
from taktline.localbroker import free_port
from taktline.model import CounterPath, MqttConnection, Plant, SecretRef
from tests.fixtures.grafana_contract import GrafanaContractServer
from tests.fixtures.services import InfluxService, MosquittoService
from tests.server.conftest import (
    FA1,
    FA2,
    WEDNESDAY_10,
    PinnedClock,
    Publish,
    eventually,
    publish_counter,
)
from tests.server.grafana.conftest import GRAFANA_TOKEN

T0 = WEDNESDAY_10.astimezone(dt.UTC)  # 09:00 UTC, 10:00 in Berlin (CET)
SITE_30M = "site-30m"
EVERY_MILLION = "site-every-million"


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def crossing(
    value: int = 30_000_000,
    milestone: str = SITE_30M,
    counter: CounterPath = FA2,
    ts: dt.datetime | None = None,
    scope: str = "neustadt",
) -> Crossing:
    return Crossing(
        milestone=milestone,
        name=milestone,
        value=value,
        scope=scope,
        counter=counter,
        ts=ts or at(10),
        total=value + 2,
    )


def grafana_settings(tmp_path: Path, url: str, token: str = GRAFANA_TOKEN) -> GrafanaSettings:
    secret = tmp_path / "grafana-token"
    secret.write_text(token + "\n", encoding="utf-8")
    return GrafanaSettings(url=url, token=SecretRef(file=secret), timeout_s=5)


def to_annotation(plant: Plant, made: Crossing) -> Wanted:
    """The annotation the server makes of a crossing."""
    return annotation(made, PlantNames.of(plant))


def key_tags(milestone: str, value: int) -> list[str]:
    return [f"milestone:{milestone}", f"crossing:{value}"]


def stored(grafana: GrafanaContractServer, milestone: str, value: int) -> list[dict[str, Any]]:
    """The contract server's annotations of one crossing."""
    tags = key_tags(milestone, value)
    return [a for a in grafana.state.annotations.values() if all(t in a["tags"] for t in tags)]


def adds(grafana: GrafanaContractServer) -> int:
    return sum(1 for r in grafana.requests if (r.method, r.path) == ("POST", "/api/annotations"))


async def until(check: Any, timeout_s: float = 15.0) -> None:
    async def poll() -> bool:
        return bool(check())

    await eventually(poll, timeout_s)


def outputs(
    store: StateStore,
    plant: Plant,
    mosquitto: MosquittoService,
    grafana: GrafanaSettings,
    influxdb: InfluxV1 | None = None,
) -> MilestoneOutputs:
    detector = CrossingDetector(plant.milestones, (path for path, _ in plant.counters()))
    return MilestoneOutputs(
        detector,
        store,
        MqttConnection(host=mosquitto.host, port=mosquitto.port),
        influxdb,
        grafana=grafana,
        plant=plant,
        min_backoff_s=0.05,
        max_backoff_s=0.2,
    )


@contextlib.asynccontextmanager
async def running(milestones: MilestoneOutputs) -> AsyncIterator[MilestoneOutputs]:
    task = asyncio.create_task(milestones.run())
    try:
        yield milestones
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # raises what ended it, if not the cancel


@contextlib.contextmanager
def serving(contract: GrafanaContractServer, port: int) -> Iterator[None]:
    """Serve the contract server (its state kept) on `port`: a Grafana that comes back there."""
    sock = socket.create_server(("127.0.0.1", port))
    server = uvicorn.Server(uvicorn.Config(contract, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(1000):
            if server.started:
                break
            thread.join(0.01)
        assert server.started
        yield
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def save(store: StateStore, *crossings: Crossing) -> None:
    store.save_milestones(MilestoneChanges(crossings=crossings))


# --- the payload ----------------------------------------------------------------------------


def test_a_crossing_is_tagged_by_site_line_milestone_and_value_at_its_time_in_ms(
    plant: Plant,
) -> None:
    summer = dt.datetime(2026, 7, 1, 12, 2, 11, 250000, tzinfo=dt.UTC)
    made = annotation(crossing(ts=summer), PlantNames.of(plant))
    assert made.time_ms == 1_782_907_331_250
    assert made.tags == (
        "milestone",
        "site:neustadt",
        "line:fa2",
        "milestone:site-30m",
        "crossing:30000000",
    )
    assert made.text == "30,000,000 units, Final assembly line 2, 14:02:11"  # CEST
    winter = annotation(crossing(value=3_000_000, counter=FA1), PlantNames.of(plant))
    assert winter.text == "3,000,000 units, Final assembly line 1, 10:00:10"  # CET


def test_a_line_the_plant_no_longer_has_is_named_by_the_scope_in_the_plant_zone(
    plant: Plant,
) -> None:
    gone = CounterPath("neustadt", "final", "fa9", "eol", "passed")
    names = PlantNames.of(plant)
    by_area = annotation(crossing(counter=gone, scope="neustadt/final"), names)
    assert by_area.text == "30,000,000 units, Final assembly, 10:00:10"
    assert by_area.tags[2] == "line:fa9"
    unknown = annotation(crossing(counter=gone, scope="elsewhere"), names)
    assert unknown.text == "30,000,000 units, fa9, 10:00:10"


async def test_grafana_stores_the_annotation_as_sent(
    plant: Plant, grafana: GrafanaContractServer, tmp_path: Path
) -> None:
    settings = grafana_settings(tmp_path, grafana.url)
    async with ExactlyOnce(settings) as annotations:
        kept = await annotations.ensure(to_annotation(plant, crossing()))
    [posted] = [r for r in grafana.requests if r.method == "POST"]
    assert posted.body["time"] == posted.body["timeEnd"] == int(at(10).timestamp()) * 1000
    [saved] = grafana.state.annotations.values()
    assert saved["id"] == kept
    assert saved["dashboardId"] == 0 and saved["panelId"] == 0  # an organization annotation
    assert (saved["time"], saved["timeEnd"]) == (1_795_597_210_000, 1_795_597_210_000)
    assert saved["text"] == "30,000,000 units, Final assembly line 2, 10:00:10"
    assert saved["tags"] == [
        "milestone",
        "site:neustadt",
        "line:fa2",
        "milestone:site-30m",
        "crossing:30000000",
    ]


async def test_a_refused_token_is_a_grafana_error_that_does_not_show_the_token(
    plant: Plant, grafana: GrafanaContractServer, tmp_path: Path
) -> None:
    settings = grafana_settings(tmp_path, grafana.url, token="glsa_wrong-token-0000")
    async with ExactlyOnce(settings) as annotations:
        with pytest.raises(GrafanaError, match="401") as raised:
            await annotations.ensure(to_annotation(plant, crossing()))
    assert "glsa_" not in str(raised.value)
    missing = settings.model_copy(update={"token": SecretRef(file=tmp_path / "missing")})
    async with ExactlyOnce(missing) as annotations:
        with pytest.raises(GrafanaError, match="cannot read secret file"):
            await annotations.ensure(to_annotation(plant, crossing()))
    assert grafana.state.annotations == {}


# --- exactly once -----------------------------------------------------------------------------


async def test_annotating_again_finds_the_annotation_and_adds_nothing(
    plant: Plant, grafana: GrafanaContractServer, tmp_path: Path
) -> None:
    settings = grafana_settings(tmp_path, grafana.url)
    async with ExactlyOnce(settings) as annotations:
        first = await annotations.ensure(to_annotation(plant, crossing()))
        again = await annotations.ensure(to_annotation(plant, crossing()))
        other = await annotations.ensure(to_annotation(plant, crossing(milestone=EVERY_MILLION)))
    assert first == again != other
    assert adds(grafana) == 2
    assert len(stored(grafana, SITE_30M, 30_000_000)) == 1


async def test_duplicates_left_by_racing_replicas_converge_on_the_lowest_id(
    plant: Plant, grafana: GrafanaContractServer, tmp_path: Path
) -> None:
    settings = grafana_settings(tmp_path, grafana.url)
    api = grafana_api(settings)  # as three replicas that all found nothing would add
    wanted = annotation(crossing(), PlantNames.of(plant))
    for _ in range(3):
        await api.annotations.add_annotation(
            time_from=wanted.time_ms, tags=list(wanted.tags), text=wanted.text
        )
    await api.client.s.close()
    lowest = min(a["id"] for a in stored(grafana, SITE_30M, 30_000_000))
    async with ExactlyOnce(settings) as annotations:
        kept = await annotations.ensure(to_annotation(plant, crossing()))
    assert kept == lowest
    assert [a["id"] for a in stored(grafana, SITE_30M, 30_000_000)] == [lowest]
    assert adds(grafana) == 3  # found: nothing added, only the duplicates deleted


async def test_a_crossing_is_annotated_once_across_reruns_and_restarts(
    plant: Plant, grafana: GrafanaContractServer, mosquitto: MosquittoService, tmp_path: Path
) -> None:
    settings = grafana_settings(tmp_path, grafana.url)
    with StateStore(tmp_path / "state") as store:
        save(store, crossing(), crossing(milestone=EVERY_MILLION))
        async with running(outputs(store, plant, mosquitto, settings)) as first:
            await until(lambda: first.annotated == 2)
        assert store.pending_crossings("annotated") == []

        # a crash between adding an annotation and recording it: added, still pending
        save(store, crossing(value=31_000_000, milestone=EVERY_MILLION))
        async with ExactlyOnce(settings) as annotations:
            await annotations.ensure(
                to_annotation(plant, crossing(value=31_000_000, milestone=EVERY_MILLION))
            )
        async with running(outputs(store, plant, mosquitto, settings)) as second:
            await until(lambda: second.annotated == 1)
        assert store.pending_crossings("annotated") == []
        assert adds(grafana) == 3  # found after the restart, not added again

        save(store, crossing(value=32_000_000, milestone=EVERY_MILLION))
        async with running(outputs(store, plant, mosquitto, settings)) as third:
            await until(lambda: third.annotated == 1)  # only what is pending
    assert adds(grafana) == 4
    for milestone, value in [(SITE_30M, 30_000_000), (EVERY_MILLION, 30_000_000)]:
        assert len(stored(grafana, milestone, value)) == 1
    for value in (31_000_000, 32_000_000):
        assert len(stored(grafana, EVERY_MILLION, value)) == 1


async def test_two_replicas_annotating_the_same_crossings_leave_one_annotation_each(
    plant: Plant, grafana: GrafanaContractServer, mosquitto: MosquittoService, tmp_path: Path
) -> None:
    settings = grafana_settings(tmp_path, grafana.url)
    steps = [crossing(value=v * 1_000_000, milestone=EVERY_MILLION) for v in range(2, 22)]
    with StateStore(tmp_path / "a") as one, StateStore(tmp_path / "b") as two:
        save(one, *steps)
        save(two, *steps)
        async with (
            running(outputs(one, plant, mosquitto, settings)) as first,
            running(outputs(two, plant, mosquitto, settings)) as second,
        ):
            await until(lambda: first.annotated == second.annotated == 20)
    for step in steps:
        assert len(stored(grafana, EVERY_MILLION, step.value)) == 1
    assert len(grafana.state.annotations) == 20


# --- Grafana down -------------------------------------------------------------------------------


async def test_a_grafana_that_does_not_answer_blocks_neither_the_live_bus_nor_influxdb(
    plant: Plant,
    mosquitto: MosquittoService,
    influxd: InfluxService,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    silent = socket.create_server(("127.0.0.1", port))  # takes connections, never answers
    settings = grafana_settings(tmp_path, f"http://127.0.0.1:{port}").model_copy(
        update={"timeout_s": 120}
    )
    influx = InfluxV1(api="v1", url=influxd.url, database="annotations_down", timeout_s=5)
    contract = GrafanaContractServer(GRAFANA_TOKEN)
    with StateStore(tmp_path / "state") as store, caplog.at_level(logging.INFO):
        save(store, crossing())
        async with running(outputs(store, plant, mosquitto, settings, influx)) as milestones:
            await until(lambda: milestones.published == milestones.written == 1)
            assert milestones.annotated == 0
            assert [c.key for c in store.pending_crossings("annotated")] == [(SITE_30M, 30_000_000)]
            silent.close()  # the hung request fails; retries are refused until Grafana is back
            await until(lambda: any("cannot annotate" in r.getMessage() for r in caplog.records))
            with serving(contract, port):
                await until(lambda: milestones.annotated == 1)
    assert len(stored(contract, SITE_30M, 30_000_000)) == 1
    messages = [r.getMessage() for r in caplog.records if r.name == "server.milestone_outputs"]
    assert sum("cannot annotate" in m for m in messages) == 1  # logged once while failing
    assert sum("annotating crossings in Grafana again" in m for m in messages) == 1


async def test_a_crossing_made_while_grafana_is_stopped_is_annotated_when_it_is_back(
    plant: Plant, grafana: GrafanaContractServer, mosquitto: MosquittoService, tmp_path: Path
) -> None:
    settings = grafana_settings(tmp_path, grafana.url)
    with StateStore(tmp_path / "state") as store:
        milestones = outputs(store, plant, mosquitto, settings)
        detector = milestones.detector
        detector.update(FA1, 29_999_000, at(0))
        detector.update(FA2, 900, at(0))
        async with running(milestones):
            detector.update(FA2, 999_900, at(5))  # crosses 30,000,000 (and the step's)
            milestones.wake()
            await until(lambda: milestones.annotated == 2)
            grafana.stop()
            detector.update(FA2, 1_999_950, at(60))  # crosses the step's 31,000,000
            milestones.wake()
            await until(lambda: milestones.published == 3)
            assert milestones.annotated == 2
            with serving(grafana, grafana.port):
                await until(lambda: milestones.annotated == 3)
    [late] = stored(grafana, EVERY_MILLION, 31_000_000)
    assert late["text"] == "31,000,000 units, Final assembly line 2, 10:01:00"
    assert len(grafana.state.annotations) == 3


# --- through the server -------------------------------------------------------------------------


async def test_a_crossing_on_the_live_bus_reaches_grafana_through_the_server(
    server_config: ServerConfig,
    clock: PinnedClock,
    publish: Publish,
    grafana: GrafanaContractServer,
    tmp_path: Path,
) -> None:
    settings = server_config.settings.model_copy(
        update={"grafana": grafana_settings(tmp_path, grafana.url)}
    )
    async with Server(ServerConfig(settings, server_config.plant), clock=clock) as server:
        await asyncio.wait_for(server.listener.connected.wait(), 10)
        await publish_counter(publish, FA1, 29_999_000, 1, at(0))
        await publish_counter(publish, FA2, 900, 1, at(0))
        await publish_counter(publish, FA2, 1_000, 100, at(10))
        await until(lambda: server.milestones.annotated == 2)
        async with httpx.AsyncClient(base_url=server.url) as http:
            metrics = (await http.get("/metrics")).text
    assert 'taktline_server_milestone_crossings_sent_total{output="annotated"} 2.0' in metrics
    [site] = stored(grafana, SITE_30M, 30_000_000)
    assert site["text"] == "30,000,000 units, Final assembly line 2, 10:00:10"
    assert site["time"] == int(at(10).timestamp()) * 1000
    assert "milestone" in site["tags"] and "line:fa2" in site["tags"]
    assert len(stored(grafana, EVERY_MILLION, 30_000_000)) == 1
