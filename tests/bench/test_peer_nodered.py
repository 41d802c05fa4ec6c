"""The Node-RED peer: the flow against real Mosquitto and influxd, the quick benchmark end to
end, and the error when Node-RED is not installed (needs `npm ci --prefix bench/peers`)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import paho.mqtt.publish
import pytest

from bench import harness, peer_nodered
from bench.children import running
from bench.mqtt_load import TOPIC, payload, register
from bench.peer_nodered import NodeRedMissingError, node_red_argv, nodered_child
from bench.results_model import Options
from tests.fixtures.services import InfluxService, MosquittoService, wait_until


def test_missing_node_red_is_an_error_that_names_the_install_command(tmp_path: Path) -> None:
    with pytest.raises(NodeRedMissingError, match="npm ci --prefix bench/peers"):
        node_red_argv(tmp_path)


def test_the_command_line_refuses_to_start_without_node_red(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(peer_nodered, "PEERS", tmp_path)
    with pytest.raises(SystemExit) as exited:
        harness.main(["nodered_peer", "--out", str(tmp_path / "results")])
    assert exited.value.code == 2
    assert "run `npm ci --prefix bench/peers`" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()  # nothing ran


@pytest.mark.integration
async def test_the_flow_writes_one_production_point_per_message(
    tmp_path: Path, mosquitto: MosquittoService, influxd: InfluxService
) -> None:
    influxd.create_database("nodered_flow")
    # the flow's persistent session exists before Node-RED connects: no message can miss it
    await asyncio.to_thread(register, mosquitto.port, 1, "bench-nodered")
    child = nodered_child(node_red_argv(), tmp_path, mosquitto.port, influxd.url, "nodered_flow")
    async with running(child):
        await child.wait_for("connected", 60)
        messages = [{"topic": TOPIC, "payload": payload(n), "qos": 1} for n in (1, 2, 3)]
        messages += [
            {"topic": TOPIC, "payload": b"not json", "qos": 1},  # the mqtt node's error
            {"topic": TOPIC, "payload": b'{"ts": 1}', "qos": 1},  # the function node's warning
        ]
        await asyncio.to_thread(
            paho.mqtt.publish.multiple, messages, hostname="127.0.0.1", port=mosquitto.port
        )
        await child.wait_for("log", 30, node_errors=1, node_warnings=1)
        query = "SELECT * FROM production"
        await asyncio.to_thread(
            wait_until, lambda: len(influxd.query(query, "nodered_flow")) == 3, 30, "3 points"
        )
    rows = influxd.query(query, "nodered_flow")

    tags = dict(site="bench", area="area", line="line", station="eol", counter="produced")
    assert [{k: row[k] for k in tags} for row in rows] == [tags] * 3
    assert [(row["total"], row["delta"], row["raw"]) for row in rows] == [
        (1, 0, 1),
        (2, 1, 2),
        (3, 1, 3),
    ]
    first_ts_ms = json.loads(payload(1))["ts"]
    assert [row["time"] for row in rows] == [(first_ts_ms + i) * 1_000_000 for i in range(3)]
    assert child.events["log"] == {
        "event": "log",
        "node_errors": 1,
        "node_warnings": 1,
    }


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(180)
async def test_quick_run_stores_every_message_of_both_systems() -> None:
    progress: list[str] = []
    result = await peer_nodered.run(Options(quick=True), progress.append)

    assert result.name == "nodered_peer"
    assert result.parameters["rates"] == [500, 2000]
    assert set(result.parameters["nodered"]) == {"node-red", "node-red-contrib-influxdb"}
    first = {f["system"]: f for f in result.figures if f["rate"] == 500}
    assert set(first) == {"taktline", "nodered"}
    for f in first.values():
        assert f["messages"] == 1500
        assert f["stored"] == f["messages"] and f["missing"] == 0, f
        assert f["cpu_percent"] > 0
        assert f["rss_mb_peak"] >= f["rss_mb_end"] > 0
        assert f["broker_cpu_percent"] > 0
        assert f["influxd_cpu_percent"] > 0
    assert first["nodered"]["node_errors"] == 0
    assert first["taktline"]["cpu_vs_nodered"] > 0
    for system in ("taktline", "nodered"):
        assert f"{system}_max_sustained_msgs_per_s" in result.summary
    assert len(result.table.rows) == len(result.figures)
    assert all(len(row) == len(result.table.headers) for row in result.table.rows)
    assert sum("Node-RED at 500 msgs/s" in line for line in progress) == 1
