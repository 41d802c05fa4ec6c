"""The dashboards generated for examples/plant.yaml: committed JSON is current, the SDK's models
load it back unchanged, and the panels the plant floor watches are there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dashboards.build import DASHBOARDS, GENERATED, build_dashboards, render, write_dashboards
from dashboards.datasource import DATASOURCE_TYPE, DATASOURCE_UID
from dashboards.influxql import InfluxQLQuery
from dashboards.load import load_dashboard, unknown_to_sdk
from taktline.config import load_plant
from tests.conftest import EXAMPLE_PLANT

PLANT = load_plant(EXAMPLE_PLANT)
REGENERATE = "taktline dashboards build --plant examples/plant.yaml --out dashboards/generated"


def _generated() -> dict[str, dict[str, Any]]:
    return {name: json.loads(render(board)) for name, board in build_dashboards(PLANT).items()}


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in board["panels"] if panel["type"] != "row"]


def test_committed_json_is_up_to_date(tmp_path: Path) -> None:
    write_dashboards(PLANT, tmp_path)
    fresh = sorted(p.name for p in tmp_path.glob("*.json"))
    committed = sorted(p.name for p in GENERATED.glob("*.json"))
    assert committed == fresh, f"dashboards/generated/ has other files; run: {REGENERATE}"
    for name in fresh:
        assert (GENERATED / name).read_text(encoding="utf-8") == (tmp_path / name).read_text(
            encoding="utf-8"
        ), f"dashboards/generated/{name} is out of date with the generator; run: {REGENERATE}"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_sdk_models_load_the_committed_json_unchanged(name: str) -> None:
    text = (GENERATED / name).read_text(encoding="utf-8")
    board = load_dashboard(text)
    assert board.uid and board.title
    queries = [t for p in board.panels or [] for t in getattr(p, "targets", None) or []]
    assert queries and all(isinstance(t, InfluxQLQuery) for t in queries)
    assert unknown_to_sdk(text) == []


def test_the_round_trip_check_catches_what_the_sdk_does_not_know() -> None:
    board = json.loads((GENERATED / "plant-overview.json").read_text(encoding="utf-8"))
    board["panels"][1]["fieldConfig"]["defaults"]["colour"] = "gold"  # a typo Grafana ignores
    assert unknown_to_sdk(json.dumps(board)) == ["$.panels[1].fieldConfig.defaults.colour"]
    target = board["panels"][1]["targets"][0]
    with pytest.raises(ValueError, match="raw query"):
        InfluxQLQuery.from_json(target | {"rawQuery": False})
    with pytest.raises(ValueError, match="unknown"):
        InfluxQLQuery.from_json(target | {"measurement": "production"})


def test_every_panel_queries_influxql_on_the_datasource_uid() -> None:
    for name, board in _generated().items():
        for panel in _panels(board):
            assert panel["datasource"] == {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}, name
            assert panel["targets"], f"{name}: {panel['title']} has no query"
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"]
                assert target["rawQuery"] is True
                assert target["query"].startswith("SELECT "), target["query"]
        ids = [panel["id"] for panel in board["panels"]]
        assert len(set(ids)) == len(ids), f"{name}: panel ids repeat"


def test_overview_shows_the_site_lifetime_total_and_milestone_progress() -> None:
    board = _generated()["plant-overview.json"]
    panels = {panel["title"]: panel for panel in _panels(board)}
    total = panels["Neustadt: lifetime output"]
    assert total["type"] == "stat"
    query = total["targets"][0]["query"]
    assert query.startswith('SELECT sum("total") FROM (SELECT last("total")')
    for line, output in (("fa1", "eol' AND \"counter\" = 'passed"), ("paint1", "produced")):
        assert f"\"line\" = '{line}'" in query and output in query
    progress = panels["30,000,000 vehicles: progress"]
    assert progress["type"] == "bargauge"
    assert progress["fieldConfig"]["defaults"]["max"] == 30_000_000
    assert "\"counter\" = 'passed'" in progress["targets"][0]["query"]
    step = panels["Every 1,000,000 passed: progress to the next step"]
    assert "% 1000000" in step["targets"][0]["query"]
    assert panels["30,000,000 vehicles: to go"]["type"] == "stat"
    hourly = panels["Final assembly line 1: units per hour"]["fieldConfig"]["defaults"]
    assert [s["value"] for s in hourly["thresholds"]["steps"]] == [None, 60]  # takt 60 s
    assert [a["target"]["tags"] for a in board["annotations"]["list"]] == [["milestone"]]


def test_line_detail_offers_every_line_and_yield_only_for_eol_lines() -> None:
    board = _generated()["line-detail.json"]
    (variable,) = board["templating"]["list"]
    assert variable["name"] == "line"
    assert [o["value"] for o in variable["options"]] == ["fa1", "fa2", "paint1"]
    panels = {panel["title"]: panel for panel in _panels(board)}
    attainment = [t["query"] for t in panels["Units per shift, % of plan"]["targets"]]
    assert "* 100 / 435 " in attainment[0] and "GROUP BY time(8h, 6h)" in attainment[0]
    assert "tz('Europe/Berlin')" in attainment[0]
    yields = [t["query"] for t in panels["First-pass yield"]["targets"]]
    assert len(yields) == 4 and not any("paint1" in text for text in yields)
    for panel in panels.values():
        assert all("\"line\" = '${line}'" in t["query"] for t in panel["targets"])


def test_milestones_dashboard_lists_the_milestone_measurement() -> None:
    board = _generated()["milestones.json"]
    table = next(p for p in _panels(board) if p["type"] == "table")
    (target,) = table["targets"]
    assert target["resultFormat"] == "table"
    assert target["query"] == 'SELECT * FROM "milestone" WHERE $timeFilter ORDER BY time DESC'
    assert board["annotations"]["list"][0]["target"]["tags"] == ["milestone"]
