"""`screen_latency` end to end, tiny: real PLC stand-in, edge, server, Mosquitto, Chromium."""

from __future__ import annotations

import pytest

from bench.results_model import Options
from bench.screen_browser import Mark
from bench.screen_latency import NAME, run
from bench.screen_stats import match, summary_ms


def test_a_skipped_value_counts_for_both_writes_and_an_unshown_one_is_missed() -> None:
    marks = [Mark(None, 99.0, None), Mark(5, 100.0, 100.1), Mark(7, 102.5, None)]
    matched = match([100.5, 101.0, 102.0, 103.0], marks, base=5)
    assert matched.dom_s == [2.0, 1.5, None, None]  # 6 never shown: 7 at 102.5 counts for 6 and 7
    assert matched.frame_s == [None, None, None, None]
    assert summary_ms(matched.dom_s) == {
        "changes": 4,
        "seen": 2,
        "missed": 2,
        "p50": 1500.0,
        "p95": 2000.0,
        "p99": 2000.0,
        "max": 2000.0,
        "min": 1500.0,
        "mean": 1750.0,
    }


@pytest.mark.slow
@pytest.mark.browser
async def test_quick_run_measures_every_probe_change_and_the_screens() -> None:
    progress: list[str] = []
    result = await run(Options(quick=True, sizes=(2,), window_s=1.5), progress.append)

    assert result.name == NAME
    assert result.parameters["background_lines"] == [2]
    assert result.parameters["publishing_interval_ms"] == 50
    (f,) = result.figures
    latency = f["latency_ms"]
    assert latency["changes"] == result.parameters["probe_changes"] == 20
    assert latency["seen"] == 20 and latency["missed"] == 0
    assert 0 < latency["min"] <= latency["p50"] <= latency["p95"] <= latency["p99"]
    assert latency["p99"] <= latency["max"]
    assert f["frame_latency_ms"]["seen"] > 0
    assert f["chromium"]

    server = f["server"]
    assert set(server) == {"no_screen", "probe_phase_one_screen", "screens", "streams"}
    assert server["no_screen"]["live_bus_messages_per_s"] > 0  # the background reached it
    assert server["no_screen"]["background_changes_per_s"] > 0
    screens = server["screens"]
    assert screens["screens"] == 8  # more than 6: each screen needs a connection of its own
    assert screens["sse_clients"] >= 8
    assert screens["screens_updating"] == 8
    assert screens["cpu_percent"] > 0
    assert screens["rss_mb_peak"] >= screens["rss_mb_end"] > 0
    streams = server["streams"]
    assert streams["streams"] == 8
    assert streams["sse_clients"] >= 8
    assert streams["events_per_stream_per_s"] > 0
    assert streams["cpu_percent"] > 0

    assert set(f["goals"]) == {"latency_p99", "screens_cpu", "streams_cpu", "all"}
    assert result.summary["goal_measured"] is False  # a quick run is not the size
    assert len(result.table.rows) == 1
    assert len(result.table.rows[0]) == len(result.table.headers)
    assert any("20/20 probe changes shown" in line for line in progress)
