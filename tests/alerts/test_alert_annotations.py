"""Resolved alerts as Grafana region annotations, against the Grafana contract server (Grafana
cannot run here): the payload, one annotation per alert across reruns, duplicates removed, and
the store as the queue."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.alerts.alert_store import AlertStore
from server.alerts.annotations import AlertAnnotator, alert_annotation
from server.alerts.records import Alert
from server.alerts.transitions import AlertKey
from server.grafana.client import close_api, grafana_api
from server.grafana.exactly_once import ExactlyOnce
from server.store import StateStore
from taktline.config.settings import GrafanaSettings
from taktline.model import SecretRef
from tests.alerts.plants import berlin, roster_plant
from tests.fixtures.grafana_contract import GrafanaContractServer, run_grafana_contract
from tests.server.conftest import eventually

TOKEN = "glsa_contract-alerts-token-9c2e"


@pytest.fixture
def grafana() -> Iterator[GrafanaContractServer]:
    with run_grafana_contract(TOKEN) as server:
        yield server


def settings(tmp_path: Path, grafana: GrafanaContractServer) -> GrafanaSettings:
    secret = tmp_path / "grafana-token"
    secret.write_text(TOKEN + "\n", encoding="utf-8")
    return GrafanaSettings(url=grafana.url, token=SecretRef(file=secret), timeout_s=5)


def resolved(alert_id: int = 7) -> Alert:
    return Alert(
        id=alert_id,
        kind="alert",
        key=AlertKey("line_stopped", "line/fa1"),
        severity="critical",
        lines=("fa1",),
        message="Final assembly line 1 stopped: no unit for 5 min (takt 60 s)",
        since=berlin(9, 55),
        raised_at=berlin(10),
        state="resolved",
        acknowledged_at=berlin(10, 4),
        acknowledged_by="anna",
        acknowledged_via="link",
        resolved_at=berlin(10, 30),
        resolved_message="Final assembly line 1 running again: last unit 20 s ago",
    )


def ms(when: dt.datetime) -> int:
    return round(when.timestamp() * 1000)


def test_an_alert_is_a_region_from_raised_to_resolved_with_its_tags() -> None:
    annotation = alert_annotation(roster_plant(), resolved())
    assert (annotation.time_ms, annotation.time_end_ms) == (ms(berlin(10)), ms(berlin(10, 30)))
    assert annotation.tags == (
        "alert",
        "rule:line_stopped",
        "line:fa1",
        "severity:critical",
        "alert:7",
    )
    assert annotation.text == (
        "Final assembly line 1 stopped: no unit for 5 min (takt 60 s)"
        " · resolved: Final assembly line 1 running again: last unit 20 s ago"
        " · acknowledged by Anna Berger"
    )


async def test_annotating_twice_or_after_a_race_leaves_exactly_one(
    grafana: GrafanaContractServer, tmp_path: Path
) -> None:
    plant = roster_plant()
    replica = grafana_api(settings(tmp_path, grafana))
    async with ExactlyOnce(settings(tmp_path, grafana)) as annotations:
        first = await annotations.ensure(alert_annotation(plant, resolved()))
        again = await annotations.ensure(alert_annotation(plant, resolved()))
        # another replica added its own copy meanwhile
        await replica.annotations.add_annotation(
            time_from=ms(berlin(10)),
            time_to=ms(berlin(10, 30)),
            tags=["alert", "alert:7"],
            text="x",
        )
        await close_api(replica)
        after_race = await annotations.ensure(alert_annotation(plant, resolved()))
    assert first == again == after_race
    [kept] = grafana.state.annotations.values()
    assert (kept["id"], kept["time"], kept["timeEnd"]) == (
        first,
        ms(berlin(10)),
        ms(berlin(10, 30)),
    )
    assert kept["tags"] == [
        "alert",
        "rule:line_stopped",
        "line:fa1",
        "severity:critical",
        "alert:7",
    ]


async def test_the_annotator_takes_resolved_alerts_from_the_store_once(
    grafana: GrafanaContractServer, tmp_path: Path
) -> None:
    plant = roster_plant()
    with StateStore(tmp_path / "state") as state:
        store = AlertStore(state)
        still_open = resolved(8)
        still_open.state, still_open.resolved_at = "notified", None
        still_open.key = AlertKey("line_stopped", "line/fa2")
        store.save([resolved(7), still_open])
        annotator = AlertAnnotator(store, settings(tmp_path, grafana), plant)
        task = asyncio.create_task(annotator.run())

        async def done() -> bool:
            return not await asyncio.to_thread(store.unannotated)

        try:
            await eventually(done)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert annotator.annotated == 1
    assert [a["tags"][-1] for a in grafana.state.annotations.values()] == ["alert:7"]
