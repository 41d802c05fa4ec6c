"""PNG plots from a small results document: files that decode, the axes each plot should have,
taktline's bars drawn and labelled with their ratio to the reference; `--plots-only`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.image import imread

from bench import plots
from tests.conftest import REPO

AXES = {
    "opcua_intake": 3,
    "mqtt_intake": 2,
    "influx_sink": 2,
    "screen_latency": 2,
    "nodered_peer": 3,
}


def _entry(title: str, figures: list[dict[str, Any]], **summary: Any) -> dict[str, Any]:
    return {"title": title, "parameters": {}, "figures": figures, "summary": summary, "notes": []}


def _opcua(nodes: int, bare: float, own: float) -> dict[str, Any]:
    return {
        "nodes": nodes,
        "bare": {"notifications_per_s": bare, "cpu_percent": 2.0, "rss_mb_peak": 50.0},
        "taktline": {"updates_per_s": own, "cpu_percent": 5.0, "rss_mb_peak": 80.0},
        "ratios": {"updates_vs_bare": own / bare, "cpu_vs_bare": 2.5, "rss_peak_vs_bare": 1.6},
    }


def _mqtt(qos: int, consumer: str, rate: int, limit: int) -> dict[str, Any]:
    return {
        "qos": qos,
        "consumer": consumer,
        "msgs_per_s": rate,
        "cpu_percent": 95.0,
        "vs_mosquitto_sub": rate / limit,
    }


def _peer(system: str, rate: int, cpu: float, sustained: bool) -> dict[str, Any]:
    return {
        "system": system,
        "rate": rate,
        "cpu_percent": cpu,
        "rss_mb_peak": 60.0 if system == "taktline" else 130.0,
        "sustained": sustained,
    }


def _latency(p99: float) -> dict[str, float]:
    return {"p50": p99 / 2, "p95": p99 * 0.9, "p99": p99, "max": p99 * 1.2}


DOCUMENT: dict[str, Any] = {
    "benchmarks": {
        "opcua_intake": _entry(
            "OPC UA intake", [_opcua(1000, 990.0, 1000.0), _opcua(5000, 4950.0, 5000.0)]
        ),
        "mqtt_intake": _entry(
            "MQTT intake",
            [
                _mqtt(qos, consumer, rate, limit)
                for qos, limit in ((0, 500_000), (1, 200_000))
                for consumer, rate in (("mosquitto_sub", limit), ("paho", 30_000), ("edge", 60_000))
            ],
            edge_qos0={"msgs_per_s": 60_000, "goal": 45_000, "met": True},
            edge_qos1={"msgs_per_s": 60_000, "goal": 30_000, "met": True},
        ),
        "influx_sink": _entry(
            "InfluxDB sink",
            [
                {
                    "batch": 1000,
                    "gzip": gzip,
                    "bare_points_per_s": 150_000.0,
                    "sink_points_per_s": 90_000.0,
                    "sink_vs_bare": 0.6,
                    "bare_cpu_percent": 20.0,
                    "sink_cpu_percent": 60.0,
                }
                for gzip in (True, False)
            ],
        ),
        "screen_latency": _entry(
            "Line screens",
            [
                {
                    "lines": 100,
                    "latency_ms": _latency(160.0),
                    "frame_latency_ms": _latency(165.0),
                    "server": {
                        phase: {"cpu_percent": cpu}
                        for phase, cpu in (("no_screen", 9.0), ("streams", 14.0), ("screens", 15.0))
                    },
                }
            ],
        ),
        "nodered_peer": _entry(
            "Peer",
            [
                _peer("taktline", 2000, 10.0, True),
                _peer("nodered", 2000, 40.0, True),
                _peer("taktline", 5000, 20.0, True),
                _peer("nodered", 5000, 90.0, False),
            ],
            taktline_max_sustained_msgs_per_s=5000,
            taktline_limit_found=False,
            nodered_max_sustained_msgs_per_s=2000,
            nodered_limit_found=True,
            max_rate_vs_nodered=2.5,
        ),
    }
}


def _labels(name: str) -> set[str]:
    figure = plots.figure(name, DOCUMENT["benchmarks"][name])
    return {text.get_text() for ax in figure.axes for text in ax.texts}


def test_every_benchmark_gets_a_png_with_its_axes_and_taktline_drawn(tmp_path: Path) -> None:
    written = plots.write(tmp_path, DOCUMENT)

    assert sorted(path.name for path in written) == sorted(f"{name}.png" for name in AXES)
    taktline_blue = np.array([0x1F, 0x77, 0xB4]) / 255
    for name, axes in AXES.items():
        figure = plots.figure(name, DOCUMENT["benchmarks"][name])
        assert len(figure.axes) == axes, name
        pixels = imread(tmp_path / f"{name}.png")  # fails unless the file is a PNG
        width, height = figure.get_size_inches() * plots.DPI
        assert pixels.shape == (round(height), round(width), 4), name
        assert (np.abs(pixels[:, :, :3] - taktline_blue).max(axis=2) < 0.02).any(), name


def test_bars_carry_their_ratio_to_the_reference() -> None:
    assert {"1.01x", "2.50x", "1.60x"} <= _labels("opcua_intake")
    assert {"1.00x", "0.30x", "0.12x"} <= _labels("mqtt_intake")
    assert {"0.60x", "3.00x"} <= _labels("influx_sink")
    assert {">= 5,000 (2.50x Node-RED)", "2,000"} <= _labels("nodered_peer")


def test_plots_only_redraws_from_the_results_files(tmp_path: Path) -> None:
    for name in ("influx_sink", "nodered_peer"):
        own = {"benchmarks": {name: DOCUMENT["benchmarks"][name]}}
        (tmp_path / f"{name}.json").write_text(json.dumps(own), encoding="utf-8")

    def bench(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "bench", "--plots-only", "--out", str(tmp_path), *args]
        return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)

    done = bench()
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["influx_sink.png", "nodered_peer.png"]
    assert imread(tmp_path / "nodered_peer.png").shape[2] == 4

    refused = bench("opcua_intake")
    assert refused.returncode == 2
    assert f"no results to plot in {tmp_path} for opcua_intake" in refused.stderr
