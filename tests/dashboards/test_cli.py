"""`taktline dashboards build` as a user runs it: a subprocess writing into a folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dashboards.build import DASHBOARDS, GENERATED
from tests.conftest import EXAMPLE_PLANT


def _build(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "taktline.cli", "dashboards", "build", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=cwd, check=False)


def test_build_writes_one_json_file_per_dashboard(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _build(tmp_path, "--plant", str(EXAMPLE_PLANT), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(DASHBOARDS)
    for name in DASHBOARDS:
        assert f"wrote {out / name}" in result.stdout
        assert json.loads((out / name).read_text(encoding="utf-8"))["uid"].startswith("taktline-")
        assert (out / name).read_bytes() == (GENERATED / name).read_bytes()


def test_build_reports_a_broken_plant_file(tmp_path: Path) -> None:
    plant = tmp_path / "plant.yaml"
    plant.write_text("name: x\nsites: []\n", encoding="utf-8")
    result = _build(tmp_path, "--plant", str(plant), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "sites" in result.stderr
    assert not (tmp_path / "out").exists()
