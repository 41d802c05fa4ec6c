"""`python -m bench [NAME ...]`: run benchmarks, write the results files, print the JSON figures."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from bench import (
    influx_sink,
    mqtt_intake,
    opcua_intake,
    peer_nodered,
    plots,
    report,
    screen_latency,
)
from bench.results_model import Benchmark, BenchResult, Options

BENCHMARKS: dict[str, Benchmark] = {
    opcua_intake.NAME: opcua_intake.run,
    mqtt_intake.NAME: mqtt_intake.run,
    influx_sink.NAME: influx_sink.run,
    screen_latency.NAME: screen_latency.run,
    peer_nodered.NAME: peer_nodered.run,
}
"""Every benchmark by name, in the order `python -m bench` runs them."""

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def progress(message: str) -> None:
    """One progress line on stderr (stdout carries the JSON figures)."""
    stamp = dt.datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


async def run_all(names: Sequence[str], options: Options) -> list[BenchResult]:
    """Run the named benchmarks one after the other."""
    results = []
    for name in names:
        progress(f"{name}: starting")
        results.append(await BENCHMARKS[name](options, progress))
        progress(f"{name}: done")
    return results


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a list like 1000,5000") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes are positive integers")
    return sizes


def parser() -> argparse.ArgumentParser:
    """The command line of `python -m bench`."""
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run taktline's benchmarks; write bench/results/latest.json, latest.md and"
        " a PNG plot per benchmark.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(BENCHMARKS)}")
    p.add_argument("--quick", action="store_true", help="small sizes and short windows")
    p.add_argument("--sizes", type=_sizes, default=None, help="sizes to run, e.g. 1000,5000")
    p.add_argument("--window", type=float, default=None, help="measuring window in seconds")
    p.add_argument(
        "--out", type=Path, default=RESULTS_DIR, help=f"results folder (default {RESULTS_DIR})"
    )
    p.add_argument(
        "--plots-only",
        action="store_true",
        help="run nothing: redraw NAME.png from the NAME.json files in the results folder",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run; exit 0 after writing the results, 2 on unknown benchmark names."""
    p = parser()
    args = p.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark {', '.join(unknown)} (have: {', '.join(BENCHMARKS)})")
    if args.plots_only:
        return redraw(p, args.out, args.names)
    names = args.names or list(BENCHMARKS)
    if peer_nodered.NAME in names:
        try:
            peer_nodered.node_red_argv()
        except peer_nodered.NodeRedMissingError as exc:
            p.error(str(exc))
    options = Options(quick=args.quick, sizes=args.sizes, window_s=args.window)
    started = dt.datetime.now(dt.UTC)
    results = asyncio.run(run_all(names, options))
    document = report.results_json(results, options, started)
    written = report.write(args.out, document, results)
    drawn = plots.write(args.out, document)
    progress(f"wrote {written}, {written.with_suffix('.md').name}, {_names(drawn)}")
    print(json.dumps(document["benchmarks"], indent=2))
    return 0


def redraw(p: argparse.ArgumentParser, out: Path, names: Sequence[str]) -> int:
    """Draw NAME.png from each NAME.json in `out` (all there are when no names are given)."""
    names = names or [name for name in BENCHMARKS if (out / f"{name}.json").exists()]
    missing = [name for name in names if not (out / f"{name}.json").exists()]
    if missing or not names:
        p.error(f"no results to plot in {out} for {', '.join(missing) or 'any benchmark'}")
    drawn = []
    for name in names:
        document = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
        drawn += plots.write(out, document)
    progress(f"wrote {_names(drawn)} in {out}")
    return 0


def _names(paths: Sequence[Path]) -> str:
    return ", ".join(path.name for path in paths) or "no plots"
