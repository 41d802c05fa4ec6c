"""`python -m bench` end to end at a tiny size: real generator, edge, bare client and Mosquitto."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.mark.slow
@pytest.mark.integration
def test_quick_run_writes_json_and_markdown_with_positive_rates(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "opcua_intake",
            "--quick",
            "--sizes",
            "40",
            "--window",
            "2",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr

    document = json.loads((tmp_path / "latest.json").read_text(encoding="utf-8"))
    assert document["machine"]["cores"] >= 1
    assert document["machine"]["packages"]["asyncua"]
    intake = document["benchmarks"]["opcua_intake"]
    assert intake["parameters"]["sizes"] == [40]
    (row,) = intake["figures"]
    assert row["nodes"] == 40
    assert row["generator"]["during_taktline"]["changes_per_s"] > 0
    assert row["bare"]["notifications_per_s"] > 0
    assert row["taktline"]["updates_per_s"] > 0
    assert row["taktline"]["rss_mb_peak"] > 0
    assert row["bare"]["api"] == "async-iterator"
    assert set(row["ratios"]) >= {"updates_vs_bare", "cpu_vs_bare", "rss_peak_vs_bare"}
    assert set(row["goals"]) >= {"share_into_outbox", "cpu", "rss", "cpu_ratio", "all"}
    assert intake["summary"]["goal_measured"] is False  # 10,000 counters were not run

    assert json.loads(done.stdout)["opcua_intake"]["figures"][0]["nodes"] == 40
    table = (tmp_path / "latest.md").read_text(encoding="utf-8")
    assert "| nodes |" in table
    assert "\n| 40 |" in table
    own = json.loads((tmp_path / "opcua_intake.json").read_text(encoding="utf-8"))
    assert own["benchmarks"] == document["benchmarks"]  # the benchmark's own file, same figures
    assert (tmp_path / "opcua_intake.md").read_text(encoding="utf-8") == table


def test_unknown_benchmark_name_is_refused_with_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "no_such_bench"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "unknown benchmark no_such_bench" in done.stderr
    assert "opcua_intake" in done.stderr
