"""The InfluxDB v1 sink against a real influxd."""

from __future__ import annotations

import httpx
import pytest

from edge.clock import to_ns
from edge.sinks.errors import BatchRejectedError, SinkUnavailableError
from edge.sinks.influxdb import InfluxV1Sink, line_protocol
from taktline.config.settings import InfluxV1
from taktline.localbroker import free_port
from tests.edge.helpers import PASSED, T0, update
from tests.fixtures.services import InfluxService


def settings(url: str, database: str) -> InfluxV1:
    return InfluxV1(api="v1", url=url, database=database, timeout_s=2)


def test_line_protocol_has_the_contract_tags_and_integer_fields() -> None:
    line = line_protocol(update(16_250_317))
    assert line.startswith(
        "production,area=final,counter=passed,line=fa1,site=neustadt,station=eol "
    )
    fields, ts = line.split(" ")[1:]
    assert sorted(fields.split(",")) == [
        "delta=1i",
        f"raw={16_250_317 % 65536}i",
        "total=16250317i",
    ]
    assert ts == str(to_ns(T0) + 16_250_317 * 1_000_000_000)


async def test_points_land_once_even_when_written_twice(influxd: InfluxService) -> None:
    influxd.drop_database("edge_points")
    async with InfluxV1Sink(settings(influxd.url, "edge_points")) as sink:
        await sink.ready()  # creates the database
        batch = [update(100), update(101, delta=1)]
        await sink.send(batch)
        await sink.send(batch)  # a retry after a crash
    rows = influxd.query(
        "SELECT total, delta, raw FROM production GROUP BY *", database="edge_points"
    )
    assert [(r["total"], r["delta"], r["raw"]) for r in rows] == [(100, 1, 100), (101, 1, 101)]
    assert {k: rows[0][k] for k in ("site", "area", "line", "station", "counter")} == PASSED.tags()
    assert rows[0]["time"] == to_ns(T0) + 100 * 1_000_000_000


async def test_a_refused_batch_is_rejected_with_influxdb_message(influxd: InfluxService) -> None:
    influxd.drop_database("edge_conflict")
    influxd.create_database("edge_conflict")
    # someone wrote `total` as a float before: every integer `total` now conflicts
    tags = ",".join(f"{key}={value}" for key, value in PASSED.tags().items())
    async with httpx.AsyncClient() as client:
        written = await client.post(
            f"{influxd.url}/write",
            params={"db": "edge_conflict"},
            content=f"production,{tags} total=1.5".encode(),
        )
        assert written.status_code == 204
    async with InfluxV1Sink(settings(influxd.url, "edge_conflict")) as sink:
        await sink.ready()
        with pytest.raises(BatchRejectedError, match="field type conflict"):
            await sink.send([update(5)])


async def test_unreachable_influxdb_is_unavailable_not_rejected() -> None:
    async with InfluxV1Sink(settings(f"http://127.0.0.1:{free_port()}", "x")) as sink:
        with pytest.raises(SinkUnavailableError):
            await sink.ready()
        assert sink.health.connected is False
