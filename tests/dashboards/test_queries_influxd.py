"""Every generated query runs on a real InfluxDB 1.x (influxd) and returns the right numbers.

Grafana's macros are substituted the way Grafana does before it sends a raw InfluxQL query:
`$timeFilter`, `$__interval`, `$__interval_ms`, `$__range_s` and the `${line}` variable.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest

from dashboards.build import build_dashboards, render
from taktline.config import load_plant
from tests.conftest import EXAMPLE_PLANT
from tests.fixtures.services import InfluxService

DB = "dashboards_test"
T0 = int(dt.datetime(2026, 3, 10, 4, 0, tzinfo=dt.UTC).timestamp())  # 05:00 in Berlin
START, END = T0 - 3600, T0 + 3 * 3600
GAP = range(90, 110)  # fa1 makes nothing from minute 90 to 109
MINUTES = [i for i in range(120) if i not in GAP]
PASSED = [i for i in MINUTES if i % 10]  # every tenth tested vehicle fails
FA2_TOTAL, PAINT_TOTAL, FA1_FIRST = 13_749_300, 5_000, 16_250_210


def _point(line: str, station: str, counter: str, total: int, minute: int) -> str:
    tags = f"site=neustadt,area={'paint' if line == 'paint1' else 'final'},line={line}"
    return (
        f"production,{tags},station={station},counter={counter}"
        f" total={total}i,delta=1i,raw={total % 65536}i {(T0 + minute * 60) * 10**9}"
    )


@pytest.fixture(scope="module")
def influx(influxd: InfluxService) -> InfluxService:
    influxd.drop_database(DB)
    influxd.create_database(DB)
    lines = [_point("fa1", "eol", "tested", 16_312_040 + n, i) for n, i in enumerate(MINUTES)]
    lines += [_point("fa1", "eol", "passed", FA1_FIRST + n, i) for n, i in enumerate(PASSED)]
    lines += [_point("fa2", "eol", "passed", FA2_TOTAL, 0)]
    lines += [_point("paint1", "topcoat", "produced", PAINT_TOTAL, 0)]
    response = httpx.post(
        f"{influxd.url}/write", params={"db": DB}, content="\n".join(lines), timeout=10
    )
    assert response.status_code == 204, response.text
    return influxd


def _grafana(query: str, line: str = "fa1") -> str:
    return (
        query.replace("$timeFilter", f"time >= {START * 1000}ms and time <= {END * 1000}ms")
        .replace("$__interval_ms", "300000")
        .replace("$__interval", "5m")
        .replace("$__range_s", str(END - START))
        .replace("${line}", line)
    )


def _boards() -> dict[str, dict[str, Any]]:
    plant = load_plant(EXAMPLE_PLANT)
    return {name: json.loads(render(board)) for name, board in build_dashboards(plant).items()}


def _targets(board: str, title: str) -> list[str]:
    panel = next(p for p in _boards()[board]["panels"] if p.get("title") == title)
    return [target["query"] for target in panel["targets"]]


def _run(influx: InfluxService, query: str) -> list[dict[str, Any]]:
    return influx.query(_grafana(query), database=DB)


def test_every_query_of_every_dashboard_runs(influx: InfluxService) -> None:
    count = 0
    for name, board in _boards().items():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                try:
                    influx.query(_grafana(target["query"]), database=DB)
                except (RuntimeError, httpx.HTTPStatusError) as exc:
                    pytest.fail(f"{name} / {panel['title']} / {target['refId']}: {exc}")
                count += 1
    assert count > 30


def test_lifetime_total_and_milestone_distance(influx: InfluxService) -> None:
    expected = FA1_FIRST + len(PASSED) - 1 + FA2_TOTAL + PAINT_TOTAL
    (total,) = _targets("plant-overview.json", "Neustadt: lifetime output")
    assert _run(influx, total)[0]["sum"] == expected
    (to_go,) = _targets("plant-overview.json", "30,000,000 vehicles: to go")
    passed = FA1_FIRST + len(PASSED) - 1 + FA2_TOTAL
    assert _run(influx, to_go)[0]["sum"] == 30_000_000 - passed
    (step,) = _targets("milestones.json", "Every 1,000,000 passed: progress to the next step")
    assert _run(influx, step)[0]["sum"] == passed % 1_000_000


def test_shift_buckets_start_at_the_local_shift_start(influx: InfluxService) -> None:
    fa1, fa2, _paint = _targets("line-detail.json", "Units per shift")
    rows = {row["time"] // 10**9: row["units"] for row in _run(influx, fa1) if row["units"]}
    night_start = T0 - 7 * 3600  # 22:00 Berlin the evening before
    assert rows == {
        night_start: sum(1 for i in PASSED if i < 60),
        T0 + 3600: sum(1 for i in PASSED if i >= 60),
    }
    assert _run(influx, fa2) == []  # the variable selects fa1


def test_stopped_time_counts_windows_without_units(influx: InfluxService) -> None:
    fa1 = _targets("line-detail.json", "Stopped time")[0]
    busy = {(T0 + i * 60) // 180 for i in PASSED}
    assert _run(influx, fa1)[0]["stopped"] == END - START - 180 * len(busy)


def test_yield_queries_return_tested_and_passed(influx: InfluxService) -> None:
    tested, passed, *_fa2 = _targets("line-detail.json", "First-pass yield")
    assert _run(influx, tested)[0]["tested"] == len(MINUTES)
    assert _run(influx, passed)[0]["passed"] == len(PASSED)
