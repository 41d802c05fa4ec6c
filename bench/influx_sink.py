"""Benchmark `influx_sink`: points/s from the outbox through the InfluxDB sink, against a bare POST.

For each batch size (1k, 5k, 10k) and gzip on and off, on one influxd (Debian `influxdb`, 1.x)
and a fresh database per run, each part in a process of its own (bench.influx_drain):

1. `bare`: the same points, pre-built line protocol, POSTed one request at a time (the limit);
2. `fill` then `drain`: a backlog written into an outbox file, then the edge's forwarder and
   InfluxDB v1 sink deliver it (read from SQLite, format, compress, POST, advance the cursor).

Then the outage case: a backlog of BACKLOG points (a long InfluxDB outage at a large plant)
drained at the default settings while new updates keep coming at FEED_PER_S; its time, and the
drain process's peak RSS sampled every RSS_POLL_S while it drains.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.children import Child, running
from bench.procstat import memory_mb
from bench.results_model import BenchResult, Options, Progress, Table
from tests.fixtures.services import run_influxd

NAME = "influx_sink"
REPO = Path(__file__).resolve().parent.parent
BATCHES = (1000, 5000, 10_000)
FEED_PER_S = 1000
RSS_POLL_S = 0.1
GOAL_SHARE = 0.5
GOAL_DRAIN_S = 20.0
GOAL_RSS_MB = 150.0
_TIMEOUT_S = 600.0


async def run(options: Options, progress: Progress) -> BenchResult:
    """Every batch size with and without gzip, then the backlog drain."""
    points = (options.sizes or ((20_000,) if options.quick else (200_000,)))[0]
    backlog = 100_000 if options.quick else 1_000_000
    figures: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="taktline-bench-influx-") as name:
        folder = Path(name)
        (folder / "influxd").mkdir()
        with run_influxd(folder / "influxd") as influxd:
            for batch in BATCHES:
                for compress in (True, False):
                    progress(f"{NAME}: batch {batch}, gzip {compress}: {points:,} points")
                    tag = f"b{batch}_g{int(compress)}"
                    common = ["--url", influxd.url, "--batch", str(batch)]
                    common += ["--gzip", str(int(compress)), "--points", str(points)]
                    reference = await _measure(folder, f"bare_{tag}", ["bare", *common])
                    sink = await _sink_run(folder, tag, common, points, 0)
                    figures.append(
                        {
                            "batch": batch,
                            "gzip": compress,
                            "points": points,
                            "bare_points_per_s": reference["rate"],
                            "sink_points_per_s": sink["rate"],
                            "sink_vs_bare": sink["rate"] / reference["rate"],
                            "bare_cpu_percent": reference["cpu_percent"],
                            "sink_cpu_percent": sink["cpu_percent"],
                            "sink_peak_rss_mb": sink["peak_rss_mb"],
                        }
                    )
            progress(f"{NAME}: draining a backlog of {backlog:,} points, {FEED_PER_S}/s coming")
            common = ["--url", influxd.url, "--points", str(backlog), "--batch", "5000"]
            drained = await _sink_run(folder, "backlog", common, backlog, FEED_PER_S)
    shares = [f["sink_vs_bare"] for f in figures]
    summary = {
        "sink_vs_bare_min": min(shares),
        "backlog_points": backlog,
        "backlog_drain_s": drained["seconds"],
        "backlog_points_per_s": drained["rate"],
        "backlog_fed_meanwhile": drained["fed"],
        "backlog_peak_rss_mb": drained["peak_rss_mb"],
        "goal": f"sink >= {GOAL_SHARE:.0%} of the bare POST at every batch size; "
        f"1,000,000 points drain in < {GOAL_DRAIN_S:g} s while new data flows; "
        f"RSS < {GOAL_RSS_MB:g} MB",
        "goal_met": min(shares) >= GOAL_SHARE
        and drained["seconds"] < GOAL_DRAIN_S
        and drained["peak_rss_mb"] < GOAL_RSS_MB
        and backlog >= 1_000_000,
    }
    return BenchResult(
        name=NAME,
        title="InfluxDB sink: outbox -> line protocol -> influxd 1.x, vs. a bare batched POST",
        parameters={
            "points_per_run": points,
            "batches": list(BATCHES),
            "counters": 1000,
            "backlog": backlog,
            "feed_per_s_during_backlog": FEED_PER_S,
            "influxd": "Debian influxdb 1.x, 127.0.0.1, fresh database per run",
            "gzip_level": 1,
        },
        figures=figures,
        table=_table(figures),
        summary=summary,
        notes=[
            "Rates are points over the wall time from the first request to the last answer; "
            "one request in flight for both the bare POST and the sink.",
            "CPU is the measured process's CPU time over that time, % of one core; influxd's "
            "own CPU (the limit) is not included.",
            "Peak RSS of the drain is the highest VmRSS sampled every 0.1 s while it drained "
            "(the backlog was written by another process).",
        ],
    )


async def _sink_run(
    folder: Path, tag: str, common: list[str], points: int, feed: int
) -> dict[str, float]:
    outbox = folder / f"outbox_{tag}.sqlite"
    await _measure(
        folder, f"fill_{tag}", ["fill", "--outbox", str(outbox), "--points", str(points)]
    )
    args = ["drain", *common, "--outbox", str(outbox), "--feed", str(feed)]
    return await _measure(folder, f"drain_{tag}", args, database=f"bench_{tag}")


async def _measure(
    folder: Path, name: str, args: list[str], database: str | None = None
) -> dict[str, float]:
    """Run one bench.influx_drain process; its rate, CPU, peak RSS while it worked."""
    argv = [sys.executable, "-m", "bench.influx_drain", *args, "--database", database or name]
    child = Child(name, argv, folder / f"{name}.log", REPO)
    async with running(child):
        if args[0] == "fill":
            await child.wait_for("filled", _TIMEOUT_S)
            return {}
        await child.wait_for("draining", _TIMEOUT_S)
        peak = 0.0
        while "done" not in child.events:
            child.alive()
            peak = max(peak, memory_mb(child.pid)[0])
            await asyncio.sleep(RSS_POLL_S)
        done = child.latest("done")
    seconds = float(done["seconds"])
    return {
        "rate": done["points"] / seconds,
        "seconds": seconds,
        "cpu_percent": 100 * float(done["cpu_s"]) / seconds,
        "peak_rss_mb": peak,
        "fed": float(done.get("fed", 0)),
    }


def _table(figures: list[dict[str, Any]]) -> Table:
    rows = [
        [
            f"{f['batch']:,}",
            "on" if f["gzip"] else "off",
            f"{f['bare_points_per_s']:,.0f}",
            f"{f['sink_points_per_s']:,.0f}",
            f"{f['sink_vs_bare']:.2f}x",
            f"{f['bare_cpu_percent']:.0f}",
            f"{f['sink_cpu_percent']:.0f}",
            f"{f['sink_peak_rss_mb']:.0f}",
        ]
        for f in figures
    ]
    headers = ["batch", "gzip", "bare POST pts/s", "sink pts/s", "sink / bare", "bare CPU %"]
    return Table([*headers, "sink CPU %", "sink RSS MB"], rows)
