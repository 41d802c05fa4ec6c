"""The results files: `latest.json` (machine and figures), `latest.md` (a table per benchmark),
and the same per benchmark (`NAME.json`, `NAME.md`)."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.results_model import BenchResult, Options

PACKAGES = (
    "taktline",
    "asyncua",
    "aiomqtt",
    "paho-mqtt",
    "pydantic",
    "prometheus-client",
    "playwright",
)


def machine_info() -> dict[str, Any]:
    """Cores, memory, CPU model, load, Python and package versions of this machine."""
    return {
        "cores": os.cpu_count(),
        "memory_mb": _meminfo_mb("MemTotal"),
        "cpu_model": _cpu_model(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "mosquitto": _mosquitto_version(),
    }


def results_json(
    results: Sequence[BenchResult], options: Options, started: dt.datetime
) -> dict[str, Any]:
    """The whole results document."""
    return {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "options": {
            "quick": options.quick,
            "sizes": list(options.sizes) if options.sizes else None,
            "window_s": options.window_s,
        },
        "machine": machine_info(),
        "benchmarks": {result.name: result.as_json() for result in results},
    }


def markdown(document: dict[str, Any], results: Sequence[BenchResult]) -> str:
    """The Markdown report: the machine, then each benchmark's table, summary and notes."""
    m = document["machine"]
    lines = [
        "# taktline benchmarks",
        "",
        f"Run {document['started_at']} on {m['cores']} cores, {m['memory_mb']:,} MB,"
        f" {m['cpu_model']}; Python {m['python']}, asyncua {m['packages']['asyncua']};"
        f" load average at the end {m['load_average']}."
        + (" Quick run (small sizes)." if document["options"]["quick"] else ""),
    ]
    for result in results:
        lines += ["", f"## {result.name}: {result.title}", ""]
        lines.append("| " + " | ".join(result.table.headers) + " |")
        lines.append("|" + "---|" * len(result.table.headers))
        lines += ["| " + " | ".join(row) + " |" for row in result.table.rows]
        if result.summary:
            lines.append("")
            lines += [f"- {key}: {value}" for key, value in result.summary.items()]
        if result.notes:
            lines.append("")
            lines += [f"- {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def write(out_dir: Path, document: dict[str, Any], results: Sequence[BenchResult]) -> Path:
    """Write latest.json and latest.md into `out_dir`, and each benchmark's own NAME.json and
    NAME.md (so a run of one benchmark keeps the others' last figures); latest.json's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_file = out_dir / "latest.json"
    json_file.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    (out_dir / "latest.md").write_text(markdown(document, results), encoding="utf-8")
    for result in results:
        own = document | {"benchmarks": {result.name: result.as_json()}}
        (out_dir / f"{result.name}.json").write_text(
            json.dumps(own, indent=2) + "\n", encoding="utf-8"
        )
        (out_dir / f"{result.name}.md").write_text(markdown(own, [result]), encoding="utf-8")
    return json_file


def _meminfo_mb(key: str) -> int | None:
    for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
        name, _, rest = line.partition(":")
        if name == key:
            return int(rest.split()[0]) // 1024
    return None


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "model name":
            return value.strip()
    return platform.processor() or "unknown"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _mosquitto_version() -> str | None:
    binary = shutil.which("mosquitto", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if binary is None:
        return None
    # `mosquitto -h` prints "mosquitto version X.Y.Z" first and exits non-zero.
    done = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=5, check=False)
    first = (done.stdout or done.stderr).splitlines()
    return first[0].removeprefix("mosquitto version ").strip() if first else None
