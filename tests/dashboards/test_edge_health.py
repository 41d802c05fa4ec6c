"""The Edge health dashboard: its queries run on a real influxd holding samples the server's
writer (server.edge_health_influx) wrote, and return the right numbers.

Grafana's macros are substituted as Grafana does: `$timeFilter`, `$__interval` and `${edge}`
(a multi-value variable becomes a regex group, e.g. `(edge-final|edge-paint)`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from dashboards.build import build_dashboards, render
from dashboards.edge_health import UID
from server.edge_health_influx import EdgeHealthInflux
from taktline.config import InfluxV1, load_plant
from taktline.livebus import EdgeHealth, OutboxHealthBody, SinkHealthBody, SourceHealthBody
from tests.conftest import EXAMPLE_PLANT
from tests.fixtures.services import InfluxService

DB = "dashboards_edge_health"
T0 = dt.datetime(2026, 3, 10, 4, 0, tzinfo=dt.UTC)
SAMPLES = 60  # every 10 s for 10 minutes
DOWN = range(30, 36)  # the PLC is unreachable in minute 5
ALL = "(edge-final|edge-paint)"


def final(i: int) -> EdgeHealth:
    """edge-final at sample i: 120 readings/min, 1 rejected/min, InfluxDB down (3 errors per
    sample, the outbox growing by 10 per sample) for the first 5 minutes."""
    influx_down = i < 30
    depth = 10 * i if influx_down else 0
    return EdgeHealth(
        edge_id="edge-final",
        ts=T0 + dt.timedelta(seconds=10 * i),
        sources=[
            SourceHealthBody(
                source="plc-fa1",
                connected=i not in DOWN,
                last_data_at=T0,
                reconnects=1 if i >= DOWN.stop else 0,
                readings=20 * i,
                rejected=i // 6,
            )
        ],
        outbox=OutboxHealthBody(
            depth=depth, oldest_age_s=float(i) if influx_down else 0.0, dropped=0,
            max_records=10_000, full=False,
        ),
        sinks=[
            SinkHealthBody(
                sink="influxdb", connected=not influx_down, depth=depth, delivered=0,
                errors=3 * min(i, 29), rejected=0, write_s=None if influx_down else 0.01,
            ),
            SinkHealthBody(
                sink="live_bus", connected=True, depth=0, delivered=20 * i, errors=0,
                rejected=0, write_s=0.002,
            ),
        ],
    )  # fmt: skip


def paint(i: int) -> EdgeHealth:
    """edge-paint at sample i: a steady backlog of 5."""
    return EdgeHealth(
        edge_id="edge-paint",
        ts=T0 + dt.timedelta(seconds=10 * i),
        sources=[],
        outbox=OutboxHealthBody(depth=5, oldest_age_s=0.5, dropped=0, max_records=10, full=False),
        sinks=[],
    )


@pytest.fixture(scope="module")
def influx(influxd: InfluxService) -> Iterator[InfluxService]:
    influxd.drop_database(DB)

    async def write() -> None:
        writer = EdgeHealthInflux(InfluxV1(api="v1", url=influxd.url, database=DB))
        for i in range(SAMPLES):
            writer.offer(final(i))
            writer.offer(paint(i))
        running = asyncio.create_task(writer.run())
        try:
            async with asyncio.timeout(20):
                while writer.written + writer.dropped < 2 * SAMPLES:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        assert (writer.written, writer.dropped) == (2 * SAMPLES, 0)

    asyncio.run(write())
    yield influxd


def board() -> dict[str, Any]:
    boards = build_dashboards(load_plant(EXAMPLE_PLANT))
    generated: dict[str, Any] = json.loads(render(boards["edge-health.json"]))
    return generated


def targets(title: str) -> list[str]:
    panel = next(p for p in board()["panels"] if p.get("title") == title)
    return [target["query"] for target in panel["targets"]]


def run(influx: InfluxService, query: str, edge: str = "edge-final") -> list[dict[str, Any]]:
    start, end = int(T0.timestamp()), int(T0.timestamp()) + 600
    text = (
        query.replace("$timeFilter", f"time >= {start}s and time < {end}s")
        .replace("$__interval", "1m")
        .replace("${edge}", edge)
    )
    return influx.query(text, database=DB)


def by_minute(rows: list[dict[str, Any]], field: str) -> list[Any]:
    return [row[field] for row in sorted(rows, key=lambda row: row["time"])]


def test_the_dashboard_has_its_uid_and_an_edge_variable(influx: InfluxService) -> None:
    generated = board()
    assert generated["uid"] == UID == "taktline-edge-health"
    (variable,) = generated["templating"]["list"]
    assert (variable["name"], variable["type"], variable["multi"]) == ("edge", "query", True)
    assert variable["includeAll"] is True
    values = influx.query(variable["query"], database=DB)
    assert [row["value"] for row in values] == ["edge-final", "edge-paint"]


def test_every_query_runs_for_one_edge_and_for_all(influx: InfluxService) -> None:
    count = 0
    for panel in board()["panels"]:
        for target in panel.get("targets", []):
            assert '"edge" =~ /^${edge}$/' in target["query"], panel["title"]
            for edge in ("edge-final", ALL):
                run(influx, target["query"], edge)  # raises on an InfluxQL error
            count += 1
    assert count == 13


def test_outbox_depth_grows_while_influxdb_is_down_then_drains(influx: InfluxService) -> None:
    (depth,) = targets("Outbox depth")
    rows = run(influx, depth, ALL)
    final_rows = [row for row in rows if row["edge"] == "edge-final"]
    assert by_minute(final_rows, "depth") == [10 * (6 * m + 5) for m in range(5)] + [0] * 5
    assert {row["depth"] for row in rows if row["edge"] == "edge-paint"} == {5}
    assert {row["edge"] for row in run(influx, depth)} == {"edge-final"}
    (age,) = targets("Oldest undelivered update")
    assert by_minute(run(influx, age), "oldest_age_s")[:2] == [5.0, 11.0]


def test_counts_become_rates_per_minute(influx: InfluxService) -> None:
    (readings,) = targets("Readings per minute")
    assert set(by_minute(run(influx, readings), "readings")) == {120}
    rejected, reconnects = targets("Source errors per minute")
    assert set(by_minute(run(influx, rejected), "rejected")) == {1}
    assert by_minute(run(influx, reconnects), "reconnects") == [0] * 5 + [1] + [0] * 3
    errors, _rejected = targets("Sink errors per minute")
    influx_errors = [row for row in run(influx, errors) if row["sink"] == "influxdb"]
    assert by_minute(influx_errors, "errors") == [18] * 4 + [0] * 5  # minutes 1 to 9


def test_connectivity_and_write_latency(influx: InfluxService) -> None:
    (source,) = targets("Source connected")
    assert by_minute(run(influx, source), "connected") == [1] * 5 + [0] + [1] * 4
    (sink,) = targets("Sink connected")
    influx_sink = [row for row in run(influx, sink) if row["sink"] == "influxdb"]
    assert by_minute(influx_sink, "connected") == [0] * 5 + [1] * 5
    (latency,) = targets("Write latency")
    means = {
        row["sink"]: row["write_s"] for row in run(influx, latency) if row["write_s"] is not None
    }
    assert means == {"influxdb": 0.01, "live_bus": 0.002}
    (now,) = targets("Sources now")
    (row,) = run(influx, now)
    assert (row["source"], row["connected"], row["readings"]) == ("plc-fa1", 1, 20 * 59)
    assert (row["reconnects"], row["rejected"]) == (1, 9)
