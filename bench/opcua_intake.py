"""Benchmark `opcua_intake`: OPC UA counters into the edge's outbox, against a bare asyncua client.

For each size N, in this order, every part in a process of its own:

1. the load generator (`bench.opcua_load`): an asyncua server with N UInt32 counters, each
   counting at `rate_hz`, spread over the second; it measures the changes it achieves;
2. the reference (`bench.opcua_bare`): one asyncua subscription on the N nodes, async-iterator
   API, counting notifications;
3. the taktline edge (`taktline edge --config`): one OPC UA source of N nodes mapped to N
   counters, the live bus to a local Mosquitto, no InfluxDB; counted are the updates committed
   to its outbox (the outbox's sequence) and delivered to the live bus.

Each consumer is measured over the same fixed window after a warm-up: its rate, CPU (% of one
core, /proc utime+stime), RSS (peak = VmHWM, and at the end), and the generator's achieved rate
and CPU during that window. When the generator achieves less than GOAL_SHARE of its target, the
generator, not the consumer, is the limit and the row says so.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.children import Child, running
from bench.edge_process import edge_child, outbox_position, write_edge_files
from bench.opcua_bare import API as BARE_API
from bench.opcua_load import endpoint
from bench.procstat import MachineMeter, Meter, Usage
from bench.results_model import BenchResult, Options, Progress, Table
from taktline.localbroker import free_port, mosquitto

NAME = "opcua_intake"
REPO = Path(__file__).resolve().parent.parent

GOAL_NODES = 10_000
GOAL_SHARE = 0.95
"""At least this share of the generator's changes must reach the outbox."""
GOAL_CPU_PERCENT = 40.0
GOAL_RSS_MB = 150.0
GOAL_CPU_RATIO = 1.5
POLL_S = 0.25
BUSY_MACHINE_PERCENT = 50.0
"""Other processes using more than this (% of one core) during a window get a note."""
SATURATED_SHARE = 0.9
"""A machine busy at this share of all its cores is saturated."""


@dataclass(frozen=True, slots=True)
class Params:
    """How one run is sized."""

    sizes: tuple[int, ...]
    warmup_s: float
    window_s: float
    start_timeout_s: float
    rate_hz: float = 1.0
    publishing_ms: int = 500
    sampling_ms: int = 0

    def as_json(self) -> dict[str, Any]:
        """The parameters as recorded in the results."""
        return {
            "sizes": list(self.sizes),
            "rate_hz_per_counter": self.rate_hz,
            "publishing_interval_ms": self.publishing_ms,
            "sampling_interval_ms": self.sampling_ms,
            "warmup_s": self.warmup_s,
            "window_s": self.window_s,
            "bare_client_api": BARE_API,
        }


FULL = Params(sizes=(1000, 5000, 10_000), warmup_s=5.0, window_s=20.0, start_timeout_s=90.0)
QUICK = Params(sizes=(50,), warmup_s=1.0, window_s=3.0, start_timeout_s=30.0)


@dataclass(frozen=True, slots=True)
class Window:
    """One consumer over the measuring window, with the generator beside it."""

    rates: dict[str, float]
    usage: Usage
    generator_rate: float
    generator_cpu_percent: float
    generator_behind_s: float
    machine_cpu_percent: float
    """Every process of the machine, in % of one core (the cores times 100 is all of it)."""

    @property
    def others_cpu_percent(self) -> float:
        """What ran besides the consumer and the generator (the broker, other work)."""
        ours = self.usage.cpu_percent + self.generator_cpu_percent
        return max(0.0, self.machine_cpu_percent - ours)


Counts = Callable[[], Awaitable[tuple[float, dict[str, int]]]]
"""(monotonic time, cumulative counts) of a consumer, read now."""


async def run(options: Options, progress: Progress) -> BenchResult:
    """Run every size; the figures side by side with the bare client's."""
    base = QUICK if options.quick else FULL
    params = Params(
        sizes=options.sizes or base.sizes,
        warmup_s=base.warmup_s,
        window_s=options.window_s or base.window_s,
        start_timeout_s=base.start_timeout_s,
    )
    figures: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="taktline-bench-") as tmp:
        async with mosquitto() as broker_port:
            for nodes in params.sizes:
                folder = Path(tmp) / f"n{nodes}"
                folder.mkdir()
                figures.append(await _measure_size(nodes, params, broker_port, folder, progress))
    return BenchResult(
        name=NAME,
        title="OPC UA intake: counters at 1 Hz into the outbox, vs. a bare asyncua subscription",
        parameters=params.as_json(),
        figures=figures,
        table=_table(figures),
        summary=_summary(figures),
        notes=_notes(figures),
    )


async def _measure_size(
    nodes: int, params: Params, broker_port: int, folder: Path, progress: Progress
) -> dict[str, Any]:
    port = free_port()
    url = endpoint(port)
    generator = Child(
        "load generator",
        [
            sys.executable,
            "-m",
            "bench.opcua_load",
            "--nodes",
            str(nodes),
            "--port",
            str(port),
            "--rate",
            str(params.rate_hz),
        ],
        folder / "generator.log",
        REPO,
    )
    async with running(generator):
        ready = await generator.wait_for("ready", params.start_timeout_s)
        progress(f"{NAME} N={nodes}: generator ready (address space built in {ready['build_s']}s)")
        bare = await _bare_phase(nodes, url, params, generator, folder)
        progress(f"{NAME} N={nodes}: bare client   {_line(bare, 'notifications')}")
        edge, startup_s = await _edge_phase(nodes, url, params, generator, broker_port, folder)
        progress(f"{NAME} N={nodes}: taktline edge {_line(edge, 'committed')}")
    return _figures(nodes, params, ready, bare, edge, startup_s)


async def _bare_phase(
    nodes: int, url: str, params: Params, generator: Child, folder: Path
) -> Window:
    argv = [
        sys.executable,
        "-m",
        "bench.opcua_bare",
        "--endpoint",
        url,
        "--nodes",
        str(nodes),
        "--publishing-ms",
        str(params.publishing_ms),
        "--sampling-ms",
        str(params.sampling_ms),
    ]
    bare = Child("bare asyncua client", argv, folder / "bare.log", REPO)
    async with running(bare):
        await bare.wait_for("progress", params.start_timeout_s, notifications=nodes)
        await asyncio.sleep(params.warmup_s)

        async def counts() -> tuple[float, dict[str, int]]:
            latest = bare.latest("progress")
            return float(latest["t"]), {"notifications": int(latest["notifications"])}

        return await _window(bare, generator, counts, params.window_s)


async def _edge_phase(
    nodes: int, url: str, params: Params, generator: Child, broker_port: int, folder: Path
) -> tuple[Window, float]:
    files = write_edge_files(
        folder / "edge",
        nodes=nodes,
        endpoint=url,
        broker_port=broker_port,
        publishing_ms=params.publishing_ms,
        sampling_ms=params.sampling_ms,
    )
    edge = edge_child(files, REPO)

    async def counts() -> tuple[float, dict[str, int]]:
        position = await outbox_position(files.outbox)
        return time.monotonic(), {
            "committed": position.committed,
            "live_bus": position.delivered_live_bus,
        }

    started = time.monotonic()
    async with running(edge):
        try:
            async with asyncio.timeout(params.start_timeout_s):
                while (await counts())[1]["committed"] < nodes:
                    edge.alive()
                    await asyncio.sleep(POLL_S)
        except TimeoutError:
            raise RuntimeError(
                f"the edge committed fewer than {nodes} updates in {params.start_timeout_s}s:\n"
                f"{edge.log_tail()}"
            ) from None
        startup_s = time.monotonic() - started
        await asyncio.sleep(params.warmup_s)
        return await _window(edge, generator, counts, params.window_s), startup_s


async def _window(consumer: Child, generator: Child, counts: Counts, seconds: float) -> Window:
    """Measure the consumer and the generator over `seconds`."""
    meter, generator_meter, machine = Meter(consumer.pid), Meter(generator.pid), MachineMeter()
    g0 = generator.latest("progress")
    t0, c0 = await counts()
    meter.start()
    generator_meter.start()
    machine.start()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        consumer.alive()
        generator.alive()
        await asyncio.sleep(min(POLL_S, max(0.0, end - time.monotonic())))
    t1, c1 = await counts()
    g1 = generator.latest("progress")
    usage = meter.stop()
    generator_usage = generator_meter.stop()
    machine_cpu = machine.stop()
    return Window(
        rates={key: (c1[key] - c0[key]) / (t1 - t0) for key in c0},
        usage=usage,
        generator_rate=(g1["changes"] - g0["changes"]) / (g1["t"] - g0["t"]),
        generator_cpu_percent=generator_usage.cpu_percent,
        generator_behind_s=float(g1["behind_s"]),
        machine_cpu_percent=machine_cpu,
    )


def _line(window: Window, key: str) -> str:
    u = window.usage
    return (
        f"{window.rates[key]:,.0f}/s of the generator's {window.generator_rate:,.0f}/s, "
        f"CPU {u.cpu_percent:.1f}%, RSS peak {u.rss_mb_peak:.0f} MB"
        f" (generator CPU {window.generator_cpu_percent:.0f}%,"
        f" everything else {window.others_cpu_percent:.0f}%)"
    )


def _limit(target: float, window: Window, rate: float) -> str:
    """Who held the rate down: `consumer`, `generator`, or `none` (everything kept up).

    The consumer comes first: a consumer that falls behind the changes the generator made is
    the limit whatever the generator achieved.
    """
    if rate < GOAL_SHARE * window.generator_rate:
        return "consumer"
    if window.generator_rate < GOAL_SHARE * target:
        return "generator"
    return "none"


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b > 0 else None


def _generator(window: Window) -> dict[str, float]:
    return {
        "changes_per_s": round(window.generator_rate, 1),
        "cpu_percent": round(window.generator_cpu_percent, 1),
        "behind_s": window.generator_behind_s,
        "machine_cpu_percent": round(window.machine_cpu_percent, 1),
        "others_cpu_percent": round(window.others_cpu_percent, 1),
    }


def _figures(
    nodes: int,
    params: Params,
    ready: dict[str, Any],
    bare: Window,
    edge: Window,
    startup_s: float,
) -> dict[str, Any]:
    target = nodes * params.rate_hz
    notifications = bare.rates["notifications"]
    updates = edge.rates["committed"]
    share = updates / edge.generator_rate if edge.generator_rate > 0 else 0.0
    cpu_ratio = _ratio(edge.usage.cpu_percent, bare.usage.cpu_percent)
    per_update = _ratio(
        edge.usage.cpu_percent / updates if updates else 0.0,
        bare.usage.cpu_percent / notifications if notifications else 0.0,
    )
    goals = {
        "share_into_outbox": share >= GOAL_SHARE,
        "cpu": edge.usage.cpu_percent < GOAL_CPU_PERCENT,
        "rss": edge.usage.rss_mb_peak < GOAL_RSS_MB,
        "cpu_ratio": cpu_ratio is not None and cpu_ratio <= GOAL_CPU_RATIO,
    }
    return {
        "nodes": nodes,
        "target_changes_per_s": target,
        "generator": {
            "build_s": ready["build_s"],
            "during_bare": _generator(bare),
            "during_taktline": _generator(edge),
        },
        "bare": {
            "api": BARE_API,
            "notifications_per_s": round(notifications, 1),
            "share_of_generator": _ratio(notifications, bare.generator_rate),
            "limit": _limit(target, bare, notifications),
            **bare.usage.as_dict(),
        },
        "taktline": {
            "updates_per_s": round(updates, 1),
            "live_bus_per_s": round(edge.rates["live_bus"], 1),
            "share_of_generator": round(share, 3),
            "limit": _limit(target, edge, updates),
            "startup_s": round(startup_s, 1),
            **edge.usage.as_dict(),
        },
        "ratios": {
            "updates_vs_bare": _ratio(updates, notifications),
            "cpu_vs_bare": cpu_ratio,
            "cpu_per_update_vs_bare": per_update,
            "rss_peak_vs_bare": _ratio(edge.usage.rss_mb_peak, bare.usage.rss_mb_peak),
        },
        "goals": goals | {"all": all(goals.values())},
    }


def _table(figures: list[dict[str, Any]]) -> Table:
    headers = [
        "nodes",
        "generator changes/s (bare / taktline run)",
        "bare notif/s",
        "taktline updates/s",
        "updates / bare",
        "live bus/s",
        "bare CPU %",
        "taktline CPU %",
        "CPU ratio",
        "bare RSS MB",
        "taktline RSS MB",
        "RSS ratio",
        "generator CPU % (bare / taktline run)",
        "other CPU % (bare / taktline run)",
        "limit (bare / taktline)",
        "goals",
    ]
    rows = []
    for f in figures:
        g, b, t, r = f["generator"], f["bare"], f["taktline"], f["ratios"]
        failed = [name for name, ok in f["goals"].items() if name != "all" and not ok]
        rows.append(
            [
                f"{f['nodes']:,}",
                f"{g['during_bare']['changes_per_s']:,.0f} / "
                f"{g['during_taktline']['changes_per_s']:,.0f}",
                f"{b['notifications_per_s']:,.0f}",
                f"{t['updates_per_s']:,.0f}",
                _x(r["updates_vs_bare"]),
                f"{t['live_bus_per_s']:,.0f}",
                f"{b['cpu_percent']:.1f}",
                f"{t['cpu_percent']:.1f}",
                _x(r["cpu_vs_bare"]),
                f"{b['rss_mb_peak']:.0f}",
                f"{t['rss_mb_peak']:.0f}",
                _x(r["rss_peak_vs_bare"]),
                _pair(g, "cpu_percent"),
                _pair(g, "others_cpu_percent"),
                f"{b['limit']} / {t['limit']}",
                "met" if not failed else "missed: " + ", ".join(failed),
            ]
        )
    return Table(headers, rows)


def _pair(generator: dict[str, Any], key: str) -> str:
    return f"{generator['during_bare'][key]:.0f} / {generator['during_taktline'][key]:.0f}"


def _x(ratio: float | None) -> str:
    return f"{ratio:.2f}x" if ratio is not None else "n/a"


def _summary(figures: list[dict[str, Any]]) -> dict[str, Any]:
    at_goal = next((f for f in figures if f["nodes"] == GOAL_NODES), None)
    return {
        "goal": (
            f"{GOAL_NODES:,} counters at 1 Hz: >= {GOAL_SHARE:.0%} of changes into the outbox,"
            f" < {GOAL_CPU_PERCENT:.0f}% of one core, < {GOAL_RSS_MB:.0f} MB RSS,"
            f" CPU <= {GOAL_CPU_RATIO}x the bare client"
        ),
        "goal_met": at_goal["goals"]["all"] if at_goal is not None else None,
        "goal_measured": at_goal is not None,
    }


def _notes(figures: list[dict[str, Any]]) -> list[str]:
    notes = [
        "CPU is % of one core (utime+stime of all threads over the window); RSS peak is VmHWM"
        " (the peak since the process started, so it includes start-up).",
        "The edge's CPU includes its live-bus sink (QoS 1 publishes to Mosquitto) and the"
        " SQLite outbox thread; the bare client only counts.",
        "Other CPU is the machine's busy time minus the consumer and the generator: the broker,"
        " and whatever else ran on the machine during the window.",
    ]
    capacity = 100 * (os.cpu_count() or 1)
    for f in figures:
        t = f["taktline"]
        if t["live_bus_per_s"] < GOAL_SHARE * t["updates_per_s"]:
            notes.append(
                f"N={f['nodes']:,}: the live bus delivered {t['live_bus_per_s']:,.0f} of the"
                f" {t['updates_per_s']:,.0f} updates/s committed: its backlog grew in the outbox."
            )
        for who, run in (("bare", "during_bare"), ("taktline", "during_taktline")):
            conditions = f["generator"][run]
            where = f"N={f['nodes']:,}, {who} run"
            saturated = conditions["machine_cpu_percent"] >= SATURATED_SHARE * capacity
            if f[who]["limit"] == "generator":
                why = (
                    "it did not get the CPU it needed on a saturated machine"
                    if saturated
                    else "it could not go faster"
                )
                notes.append(
                    f"{where}: the load generator made only {conditions['changes_per_s']:,.0f} of"
                    f" {f['target_changes_per_s']:,.0f} changes/s (at"
                    f" {conditions['cpu_percent']:.0f}% CPU) and the consumer kept up with it:"
                    f" the generator, not the consumer, was the limit ({why})."
                )
            if saturated or conditions["others_cpu_percent"] > BUSY_MACHINE_PERCENT:
                notes.append(
                    f"{where}: the machine was busy at {conditions['machine_cpu_percent']:.0f}% of"
                    f" {capacity}%, {conditions['others_cpu_percent']:.0f}% of it other processes"
                    " (the broker and other work on a shared machine): they competed with the"
                    " figures above."
                )
    return notes
