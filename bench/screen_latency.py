"""Benchmark `screen_latency`: a PLC register change to the line screen's DOM, and screens' cost.

For each size L (background lines), every part in a process of its own:

1. the PLC stand-in (`bench.screen_plc`): an asyncua server with a probe register and L x 5
   background counters, each counting at 1 Hz (spread over 10 ms ticks);
2. `taktline server --config` (generated files, bench.screen_plant) on a local Mosquitto;
3. `taktline edge --config`: one OPC UA source (publishing interval 50 ms, sampling 0) for
   every register, the live bus to the same Mosquitto (at most 10 messages/s per counter);
4. headless Chromium (Debian's, Playwright) on line screens, every page with a
   MutationObserver on `#count` (bench.screen_browser).

Phases, in this order: the server's CPU with no screen (the reference: taking in the background
alone); S plain event streams (bench.screen_sse) on S background lines, the server's CPU and RSS
over a window; one screen on the probe line while the probe register is incremented K times
about every 0.5 s, each write's wall time against the wall time the screen showed it (same
clock); S screens (Chromium pages) on S background lines, the server's CPU and RSS over a
window. The pages come last: on a small machine they can leave the server behind.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from playwright.async_api import Browser, Page, async_playwright

from bench.children import Child, running
from bench.edge_process import edge_child
from bench.opcua_load import endpoint
from bench.procstat import MachineMeter, Meter, Usage
from bench.results_model import BenchResult, Options, Progress, Table
from bench.screen_browser import clock_offset_ms, launch, marks, open_screen
from bench.screen_plant import PROBE_LINE, Wiring, line_id, write_files
from bench.screen_stats import match, summary_ms
from taktline.localbroker import free_port, mosquitto

NAME = "screen_latency"
REPO = Path(__file__).resolve().parent.parent

GOAL_P99_MS = 300.0
GOAL_SCREENS_CPU_PERCENT = 20.0
GOAL_LINES = 100
GOAL_SCREENS = 50
GOAL_CHANGES = 200
POLL_S = 0.25
SETTLE_S = 2.0
"""After the last probe write, and after opening screens, before reading or measuring."""
STEADY_S = 1.0
"""The probe screen's count must stand still this long before the first write."""
SATURATED_SHARE = 0.9
FED_TOLERANCE = 0.05
"""A window whose live-bus intake is off the no-screen window's by more than this gets a note."""
"""A machine busy at this share of all its cores is saturated."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Params:
    """How one run is sized."""

    sizes: tuple[int, ...]
    probe_changes: int
    screens: int
    window_s: float
    warmup_s: float
    start_timeout_s: float
    counters_per_line: int = 5
    rate_hz: float = 1.0
    probe_every_s: float = 0.5
    publishing_ms: int = 50
    sampling_ms: int = 0
    live_bus_max_rate_hz: float = 10.0
    commit_interval_ms: int = 100

    def as_json(self) -> dict[str, Any]:
        """The parameters as recorded in the results."""
        return {
            "background_lines": list(self.sizes),
            "counters_per_line": self.counters_per_line,
            "rate_hz_per_counter": self.rate_hz,
            "probe_changes": self.probe_changes,
            "probe_every_s": self.probe_every_s,
            "probe_jitter": "each gap x uniform(0.9, 1.1)",
            "screens": self.screens,
            "screens_kind": "Chromium pages, one browser (nice 19), a context per screen",
            "window_s": self.window_s,
            "warmup_s": self.warmup_s,
            "publishing_interval_ms": self.publishing_ms,
            "sampling_interval_ms": self.sampling_ms,
            "live_bus_max_rate_hz": self.live_bus_max_rate_hz,
            "edge_commit_interval_ms": self.commit_interval_ms,
        }


FULL = Params(
    sizes=(100,), probe_changes=200, screens=50, window_s=20.0, warmup_s=5.0, start_timeout_s=90.0
)
QUICK = Params(  # 8 screens: more than one Chromium profile's 6 connections to a host
    sizes=(20,), probe_changes=20, screens=8, window_s=5.0, warmup_s=2.0, start_timeout_s=60.0
)


@dataclass(frozen=True, slots=True)
class Window:
    """The server (and the machine) over a measuring window."""

    usage: Usage
    machine_cpu_percent: float
    live_bus_per_s: float
    background_per_s: float | None
    """Changes/s the PLC stand-in made (None without background counters)."""
    start_wall: float
    end_wall: float

    def as_dict(self) -> dict[str, Any]:
        """Rounded figures for the results file."""
        return self.usage.as_dict() | {
            "live_bus_messages_per_s": round(self.live_bus_per_s, 1),
            "background_changes_per_s": (
                None if self.background_per_s is None else round(self.background_per_s, 1)
            ),
            "machine_cpu_percent": round(self.machine_cpu_percent, 1),
        }


@dataclass(frozen=True, slots=True)
class Parts:
    """The running processes of one size and the server's address."""

    plc: Child
    server: Child
    edge: Child
    http: httpx.AsyncClient

    @property
    def children(self) -> tuple[Child, ...]:
        """All of them (checked alive while waiting)."""
        return (self.plc, self.server, self.edge)


async def run(options: Options, progress: Progress) -> BenchResult:
    """Run every size; latency percentiles and the server's cost of screens."""
    base = QUICK if options.quick else FULL
    params = Params(
        sizes=options.sizes or base.sizes,
        probe_changes=base.probe_changes,
        screens=base.screens,
        window_s=options.window_s or base.window_s,
        warmup_s=base.warmup_s,
        start_timeout_s=base.start_timeout_s,
    )
    figures: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="taktline-bench-") as tmp:
        async with mosquitto() as broker_port:
            for lines in params.sizes:
                folder = Path(tmp) / f"l{lines}"
                figures.append(await _measure_size(lines, params, broker_port, folder, progress))
    return BenchResult(
        name=NAME,
        title="Line screens: OPC UA register change to Chromium's DOM; server cost of 50 screens",
        parameters=params.as_json(),
        figures=figures,
        table=_table(figures),
        summary=_summary(figures),
        notes=_notes(params, figures),
    )


async def _measure_size(
    lines: int, params: Params, broker_port: int, folder: Path, progress: Progress
) -> dict[str, Any]:
    plc_port, server_port = free_port(), free_port()
    wiring = Wiring(
        lines=lines,
        counters=params.counters_per_line,
        endpoint=endpoint(plc_port),
        broker_port=broker_port,
        server_port=server_port,
        publishing_ms=params.publishing_ms,
        sampling_ms=params.sampling_ms,
        live_bus_max_rate_hz=params.live_bus_max_rate_hz,
        commit_interval_ms=params.commit_interval_ms,
    )
    files = write_files(folder, wiring)
    plc = Child("PLC stand-in", _plc_argv(plc_port, lines, params), folder / "plc.log", REPO)
    server_argv = [sys.executable, "-m", "taktline.cli", "server", "--config"]
    server = Child(
        "taktline server", [*server_argv, str(files.server_config)], folder / "server.log", REPO
    )
    edge = edge_child(files.edge, REPO)
    url = f"http://127.0.0.1:{server_port}"
    async with running(plc), running(server), httpx.AsyncClient(base_url=url, timeout=5) as http:
        ready = await plc.wait_for("ready", params.start_timeout_s)
        parts = Parts(plc, server, edge, http)
        await _watched(parts, _until_lines(http, set(), params.start_timeout_s))
        async with running(edge):
            every_line = {PROBE_LINE} | {line_id(i) for i in range(lines)}
            await _watched(parts, _until_lines(http, every_line, params.start_timeout_s))
            progress(f"{NAME} L={lines}: PLC ({ready['nodes']} registers), edge, server ready")
            await _watched(parts, asyncio.sleep(params.warmup_s))
            idle = await _window(parts, params.window_s)
            progress(f"{NAME} L={lines}: no screen   {_line(idle)}")
            streams = await _streams_phase(parts, url, lines, params, folder, progress)
            async with async_playwright() as playwright:
                browser = await launch(playwright)
                try:
                    latency = await _latency_phase(parts, browser, url, params, progress)
                    screens = await _screens_phase(parts, browser, url, lines, params, progress)
                    chromium = browser.version
                finally:
                    await browser.close()
    return _figures(lines, params, idle, latency, screens, streams, chromium)


def _plc_argv(port: int, lines: int, params: Params) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.screen_plc",
        "--port",
        str(port),
        "--background",
        str(lines * params.counters_per_line),
        "--rate",
        str(params.rate_hz),
        "--probe-changes",
        str(params.probe_changes),
        "--probe-every",
        str(params.probe_every_s),
    ]


async def _watched(parts: Parts, awaitable: Awaitable[T]) -> T:
    """Await, raising ChildError as soon as one of the processes dies."""
    task = asyncio.ensure_future(awaitable)
    try:
        while not task.done():
            for child in parts.children:
                child.alive()  # a child not started yet passes
            await asyncio.wait({task}, timeout=POLL_S)
        return task.result()
    finally:
        task.cancel()


async def _until_lines(http: httpx.AsyncClient, lines: set[str], timeout_s: float) -> None:
    """Until the server answers and knows a lifetime total of each of `lines`."""
    missing: set[str] = set(lines)
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                try:
                    states = (await http.get("/api/lines")).raise_for_status().json()
                except httpx.HTTPError:
                    await asyncio.sleep(POLL_S)
                    continue
                missing = lines - {s["line"] for s in states if s["total"] is not None}
                if not missing:
                    return
                await asyncio.sleep(POLL_S)
    except TimeoutError:
        raise RuntimeError(
            f"the server had no total of {len(missing)} line(s) after {timeout_s:.0f}s"
            f" (e.g. {sorted(missing)[:3]}); see the edge and server logs"
        ) from None


async def _metric(http: httpx.AsyncClient, name: str) -> float:
    """One unlabelled sample of the server's /metrics."""
    text = (await http.get("/metrics")).raise_for_status().text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"the server's /metrics has no {name}")
    return float(found.group(1))


async def _window(parts: Parts, seconds: float) -> Window:
    """The server and the machine over `seconds`."""
    window, _ = await _measured(parts, asyncio.sleep(seconds))
    return window


async def _measured(parts: Parts, awaitable: Awaitable[T]) -> tuple[Window, T]:
    """The server's CPU and RSS, the live-bus messages it took and the background changes the
    PLC stand-in made while `awaitable` ran; and its result."""
    meter, machine = Meter(parts.server.pid), MachineMeter()
    accepted0 = await _metric(parts.http, "taktline_server_livebus_accepted_total")
    background0 = parts.plc.events.get("progress")
    t0, wall0 = time.monotonic(), time.time()
    meter.start()
    machine.start()
    result = await _watched(parts, awaitable)
    usage, machine_cpu = meter.stop(), machine.stop()
    t1, wall1 = time.monotonic(), time.time()
    accepted1 = await _metric(parts.http, "taktline_server_livebus_accepted_total")
    background1 = parts.plc.events.get("progress")
    background = None
    if background0 is not None and background1 is not None and background1["t"] > background0["t"]:
        changes = background1["changes"] - background0["changes"]
        background = changes / (background1["t"] - background0["t"])
    window = Window(
        usage=usage,
        machine_cpu_percent=machine_cpu,
        live_bus_per_s=(accepted1 - accepted0) / (t1 - t0),
        background_per_s=background,
        start_wall=wall0,
        end_wall=wall1,
    )
    return window, result


@dataclass(frozen=True, slots=True)
class Latency:
    """The probe phase: latencies in s per write, the server meanwhile, the clock check."""

    dom_s: list[float | None]
    frame_s: list[float | None]
    base: int
    window: Window
    clock_offset_ms: float
    clock_round_trip_ms: float


async def _latency_phase(
    parts: Parts, browser: Browser, url: str, params: Params, progress: Progress
) -> Latency:
    page = await _watched(parts, open_screen(browser, url, PROBE_LINE, params.start_timeout_s))
    try:
        base = await _watched(parts, _steady_count(page, params.start_timeout_s))
        offset_ms, round_trip_ms = await clock_offset_ms(page)
        expected_s = params.probe_changes * params.probe_every_s * 1.2 + 30
        window, done = await _measured(parts, _probe(parts.plc, expected_s))
        matched = match([float(w) for w in done["walls"]], await marks(page), base)
    finally:
        await page.context.close()
    latency = Latency(matched.dom_s, matched.frame_s, base, window, offset_ms, round_trip_ms)
    figures = summary_ms(latency.dom_s)
    progress(
        f"{NAME}: {figures['seen']}/{figures['changes']} probe changes shown, p50"
        f" {figures['p50']} ms, p99 {figures['p99']} ms, max {figures['max']} ms"
    )
    return latency


async def _probe(plc: Child, timeout_s: float) -> dict[str, Any]:
    """Cue the PLC stand-in's probe writes; its report of them, once the last had time to show."""
    os.kill(plc.pid, signal.SIGUSR1)
    done = await plc.wait_for("probe_done", timeout_s)
    await asyncio.sleep(SETTLE_S)
    return done


async def _steady_count(page: Page, timeout_s: float) -> int:
    """The number the screen shows once it stood still for STEADY_S."""
    async with asyncio.timeout(timeout_s):
        while True:
            shown = await marks(page)
            last = shown[-1] if shown else None
            if last is not None and last.value is not None and time.time() - last.dom_s > STEADY_S:
                return last.value
            await asyncio.sleep(POLL_S)


@dataclass(frozen=True, slots=True)
class Screens:
    """The screens phase: the server over the window, the screens' updates and connections."""

    window: Window
    screens: int
    sse_clients: int
    updates_per_screen_per_s: float
    screens_updating: int
    open_s: float


async def _screens_phase(
    parts: Parts, browser: Browser, url: str, lines: int, params: Params, progress: Progress
) -> Screens:
    pages: list[Page] = []
    try:
        started = time.monotonic()
        for i in range(params.screens):
            line = line_id(i % lines) if lines else PROBE_LINE
            pages.append(
                await _watched(parts, open_screen(browser, url, line, params.start_timeout_s))
            )
        open_s = time.monotonic() - started
        await asyncio.sleep(SETTLE_S)
        clients = int(await _metric(parts.http, "taktline_server_sse_clients"))
        window = await _window(parts, params.window_s)
        updates = []
        for page in pages:
            shown = await marks(page)
            updates.append(sum(1 for m in shown if window.start_wall <= m.dom_s <= window.end_wall))
    finally:
        for page in pages:
            await page.context.close()
    seconds = window.end_wall - window.start_wall
    screens = Screens(
        window=window,
        screens=len(pages),
        sse_clients=clients,
        updates_per_screen_per_s=sum(updates) / len(updates) / seconds,
        screens_updating=sum(1 for n in updates if n > 0),
        open_s=open_s,
    )
    progress(f"{NAME}: {screens.screens} screens ({clients} event streams) {_line(window)}")
    return screens


@dataclass(frozen=True, slots=True)
class Streams:
    """The streams phase: the server over the window with plain event-stream clients."""

    window: Window
    streams: int
    sse_clients: int
    events_per_stream_per_s: float
    client: Usage


async def _streams_phase(
    parts: Parts, url: str, lines: int, params: Params, folder: Path, progress: Progress
) -> Streams:
    followed = [line_id(i % lines) if lines else PROBE_LINE for i in range(params.screens)]
    argv = [sys.executable, "-m", "bench.screen_sse", "--url", url, "--lines", ",".join(followed)]
    clients = Child("event-stream clients", argv, folder / "sse.log", REPO)
    async with running(clients):
        await _watched(parts, clients.wait_for("ready", params.start_timeout_s))
        await asyncio.sleep(SETTLE_S)
        open_streams = int(await _metric(parts.http, "taktline_server_sse_clients"))
        before, meter = clients.latest("progress"), Meter(clients.pid)
        meter.start()
        window = await _window(parts, params.window_s)
        after, client = clients.latest("progress"), meter.stop()
    events = (after["events"] - before["events"]) / (after["t"] - before["t"])
    streams = Streams(window, len(followed), open_streams, events / len(followed), client)
    progress(f"{NAME}: {streams.streams} plain event streams {_line(window)}")
    return streams


def _line(window: Window) -> str:
    u = window.usage
    return (
        f"server CPU {u.cpu_percent:.1f}%, RSS {u.rss_mb_end:.0f} MB,"
        f" {window.live_bus_per_s:,.0f} live-bus msgs/s, machine {window.machine_cpu_percent:.0f}%"
    )


def _figures(
    lines: int,
    params: Params,
    idle: Window,
    latency: Latency,
    screens: Screens,
    streams: Streams,
    chromium: str,
) -> dict[str, Any]:
    dom = summary_ms(latency.dom_s)
    frame = summary_ms(latency.frame_s)
    p99 = dom["p99"]
    goals = {
        "latency_p99": p99 is not None and dom["missed"] == 0 and p99 < GOAL_P99_MS,
        "screens_cpu": screens.window.usage.cpu_percent < GOAL_SCREENS_CPU_PERCENT,
        "streams_cpu": streams.window.usage.cpu_percent < GOAL_SCREENS_CPU_PERCENT,
    }
    return {
        "lines": lines,
        "background_counters": lines * params.counters_per_line,
        "chromium": chromium,
        "latency_ms": dom,
        "frame_latency_ms": frame,
        "probe_base_count": latency.base,
        "clock_offset_ms": round(latency.clock_offset_ms, 2),
        "clock_round_trip_ms": round(latency.clock_round_trip_ms, 2),
        "server": {
            "no_screen": idle.as_dict(),
            "probe_phase_one_screen": latency.window.as_dict(),
            "screens": screens.window.as_dict()
            | {
                "screens": screens.screens,
                "sse_clients": screens.sse_clients,
                "screens_updating": screens.screens_updating,
                "updates_per_screen_per_s": round(screens.updates_per_screen_per_s, 2),
                "open_s": round(screens.open_s, 1),
            },
            "streams": streams.window.as_dict()
            | {
                "streams": streams.streams,
                "sse_clients": streams.sse_clients,
                "events_per_stream_per_s": round(streams.events_per_stream_per_s, 2),
                "client_cpu_percent": round(streams.client.cpu_percent, 1),
            },
        },
        "goals": goals | {"all": all(goals.values())},
    }


def _table(figures: list[dict[str, Any]]) -> Table:
    headers = [
        "lines",
        "background changes/s",
        "probe changes shown",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "p99 to frame ms",
        "server CPU % (no screen / 1 screen / S screens / S plain streams)",
        "S screens (event streams)",
        "live-bus msgs/s into the server (no screen / S screens / S streams)",
        "server RSS MB (end / peak)",
        "machine CPU % (screens window)",
        "goals",
    ]
    rows = []
    for f in figures:
        lat, server = f["latency_ms"], f["server"]
        idle, probe = server["no_screen"], server["probe_phase_one_screen"]
        screens, streams = server["screens"], server["streams"]
        failed = [name for name, ok in f["goals"].items() if name != "all" and not ok]
        background = screens["background_changes_per_s"]
        rows.append(
            [
                str(f["lines"]),
                "n/a" if background is None else f"{background:,.0f}",
                f"{lat['seen']} / {lat['changes']}",
                _ms(lat["p50"]),
                _ms(lat["p95"]),
                _ms(lat["p99"]),
                _ms(lat["max"]),
                _ms(f["frame_latency_ms"]["p99"]),
                f"{idle['cpu_percent']:.1f} / {probe['cpu_percent']:.1f} /"
                f" {screens['cpu_percent']:.1f} / {streams['cpu_percent']:.1f}",
                f"{screens['screens']} ({screens['sse_clients']})",
                f"{idle['live_bus_messages_per_s']:.0f} / {screens['live_bus_messages_per_s']:.0f}"
                f" / {streams['live_bus_messages_per_s']:.0f}",
                f"{screens['rss_mb_end']:.0f} / {screens['rss_mb_peak']:.0f}",
                f"{screens['machine_cpu_percent']:.0f}",
                "met" if not failed else "missed: " + ", ".join(failed),
            ]
        )
    return Table(headers, rows)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _at_goal(f: dict[str, Any]) -> bool:
    """Whether the run was of the issue's size (a quick run is not)."""
    return bool(
        f["lines"] >= GOAL_LINES
        and f["latency_ms"]["changes"] >= GOAL_CHANGES
        and f["server"]["screens"]["screens"] >= GOAL_SCREENS
    )


def _summary(figures: Sequence[dict[str, Any]]) -> dict[str, Any]:
    at_goal = next((f for f in figures if _at_goal(f)), None)
    return {
        "goal": (
            f"with {GOAL_LINES} lines of background updates: p99 of register change to DOM"
            f" < {GOAL_P99_MS:.0f} ms (every change shown); {GOAL_SCREENS} screens"
            f" < {GOAL_SCREENS_CPU_PERCENT:.0f}% of one core of the server, both with Chromium"
            " pages and with plain event-stream clients"
        ),
        "goal_met": at_goal["goals"]["all"] if at_goal is not None else None,
        "latency_goal_met": at_goal["goals"]["latency_p99"] if at_goal is not None else None,
        "screens_goal_met": (
            at_goal["goals"]["screens_cpu"] and at_goal["goals"]["streams_cpu"]
            if at_goal is not None
            else None
        ),
        "goal_measured": at_goal is not None,
    }


def _notes(params: Params, figures: Sequence[dict[str, Any]]) -> list[str]:
    batch_gap_ms = 1000 / params.live_bus_max_rate_hz
    worst_ms = params.publishing_ms + params.commit_interval_ms + batch_gap_ms
    notes = [
        "Latency = the time Chromium's MutationObserver saw #count show the new number"
        " (performance.timeOrigin + performance.now()) minus the wall time just before the PLC"
        " stand-in wrote the register (time.time()); same machine, same clock. 'to frame' is the"
        " next requestAnimationFrame after that DOM change.",
        f"Built-in delays on the way: OPC UA publishing interval {params.publishing_ms} ms"
        f" (sampling {params.sampling_ms} ms: on every write), the edge's group commit (a batch"
        f" closes {params.commit_interval_ms} ms after its first reading), the live bus at most"
        f" {params.live_bus_max_rate_hz:g} messages/s per counter (batches >= {batch_gap_ms:.0f}"
        f" ms apart). With all three at their worst a change waits about {worst_ms:.0f} ms"
        " before it leaves the edge.",
        "Server CPU is % of one core (utime+stime of all its threads over the window). It"
        " includes taking in the background's live-bus messages: 'no screen' is that alone.",
        "Screens are real Chromium pages (one headless browser at nice 19, 1920x1080: they stand"
        " in for TVs with their own hardware and get the CPU the plant stack leaves), each in a"
        " context"
        " of its own (a TV is a browser of its own; one Chromium profile opens at most 6"
        " HTTP/1.1 connections to a host, and every screen holds one for its event stream), each"
        " on a background line's screen; the server counted the streams. 'Plain streams' are"
        " the same event streams (one per screen) held by httpx clients in one process, without"
        " browsers: the server cannot tell them apart from screens once a page has loaded.",
    ]
    capacity = 100 * (os.cpu_count() or 1)
    for f in figures:
        server = f["server"]
        for phase, label in (
            ("no_screen", "no-screen window"),
            ("probe_phase_one_screen", "latency phase"),
            ("screens", "screens window"),
            ("streams", "plain-streams window"),
        ):
            busy = server[phase]["machine_cpu_percent"]
            taken = server[phase]["live_bus_messages_per_s"]
            fed = server["no_screen"]["live_bus_messages_per_s"]
            if busy >= SATURATED_SHARE * capacity:
                kept_up = abs(taken - fed) <= FED_TOLERANCE * fed
                notes.append(
                    f"L={f['lines']}, {label}: the machine was saturated ({busy:.0f}% of"
                    f" {capacity}%: Chromium, the edge, the PLC stand-in, Mosquitto and the server"
                    " share the cores); "
                    + (
                        f"the server still took in its full load ({taken:,.0f} live-bus"
                        " messages/s), so its CPU and RSS figures stand."
                        if kept_up
                        else "the figures are held down by that, not by the server alone."
                    )
                )
        lat = f["latency_ms"]
        if lat["missed"]:
            notes.append(
                f"L={f['lines']}: {lat['missed']} of {lat['changes']} probe changes never showed"
                " on the screen before the phase ended."
            )
        if lat["min"] is not None and lat["min"] <= 0:
            notes.append(
                f"L={f['lines']}: a latency of {lat['min']} ms (<= 0) means the screen's count"
                " did not match the register: the figures of this size are wrong."
            )
        if abs(f["clock_offset_ms"]) > max(5.0, f["clock_round_trip_ms"]):
            notes.append(
                f"L={f['lines']}: the browser's clock was {f['clock_offset_ms']} ms off this"
                f" process's time.time() (round trip {f['clock_round_trip_ms']} ms): the"
                " latencies are off by about as much."
            )
        screens = server["screens"]
        fed = server["no_screen"]["live_bus_messages_per_s"]
        for phase, label in (("screens", "Chromium pages"), ("streams", "plain streams")):
            taken = server[phase]["live_bus_messages_per_s"]
            if abs(taken - fed) > FED_TOLERANCE * fed:
                notes.append(
                    f"L={f['lines']}: with {screens['screens']} {label} the server took in"
                    f" {taken:,.0f} live-bus messages/s (without a screen {fed:,.0f}): it"
                    f" {'fell behind' if taken < fed else 'caught up on a backlog'}, so its CPU"
                    " in that window is for other work than the goal means."
                )
        if screens["sse_clients"] < screens["screens"]:
            notes.append(
                f"L={f['lines']}: only {screens['sse_clients']} event streams for"
                f" {screens['screens']} screens."
            )
    return notes
