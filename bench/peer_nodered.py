"""Benchmark `nodered_peer`: the highest MQTT -> InfluxDB rate taktline and Node-RED sustain.

The peer is Node-RED with node-red-contrib-influxdb (versions pinned in bench/peers/package.json,
installed with `npm ci --prefix bench/peers`) running bench/peers/flow.json: subscribe at QoS 1,
parse JSON, one `production` point per message, joined into batches of 5,000 or 1 s, written
to InfluxDB's v1 API by the `influxdb batch` node. taktline is `taktline edge` with the same
MQTT topic as a source (one `total` counter, bench.mqtt_intake's plant) and the InfluxDB v1 sink
at its defaults (batches of 5,000 or 1 s, gzip); its live bus goes to the same broker.

For each rate in RATES, taktline then Node-RED, each on a fresh Mosquitto (bench.mqtt_intake's
BROKER_CONF: no queue limits) and a fresh database of one influxd (Debian `influxdb`, 1.x):

1. the consumer's persistent session is registered (bench.mqtt_load register), the consumer
   starts and is ready (the edge's /healthz answers 200; Node-RED logs its broker connection);
2. bench.mqtt_pace publishes rate x PUBLISH_S messages of bench.mqtt_load's payload at QoS 1,
   evenly; CPU of the consumer, Mosquitto, influxd and the whole machine is measured over it;
3. the points in InfluxDB are counted: the rate is *sustained* when every message is a point
   within GRACE_S of the last publish (both flush a batch at most 1 s old). Otherwise counting
   goes on until the count stops changing for SETTLE_S (at most SETTLE_MAX_S more): `stored`,
   and `missing` = messages - stored (late beyond that, or lost: the count cannot tell).

A system's steps end at its first rate not sustained. RSS is the consumer's peak (VmHWM) at the
end of its run, start-up included. For taktline, /healthz at the end of publishing also tells
where the messages were: taken from the broker (`taken_at_publish_end`) and waiting in the
outbox for InfluxDB (`outbox_backlog_at_publish_end`); Node-RED's only tell is its log
(`node_errors`, `node_warnings`).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from bench.children import Child, ChildError, running
from bench.edge_process import EdgeFiles, edge_child
from bench.mqtt_intake import BROKER_CONF, _edge_files
from bench.procstat import MachineMeter, Meter, memory_mb
from bench.results_model import BenchResult, Options, Table
from bench.results_model import Progress as ProgressLine
from taktline.localbroker import free_port, wait_for_port
from tests.fixtures.services import run_influxd

NAME = "nodered_peer"
REPO = Path(__file__).resolve().parent.parent
PEERS = REPO / "bench" / "peers"
INSTALL_COMMAND = "npm ci --prefix bench/peers"
SYSTEMS = ("taktline", "nodered")
LABELS = {"taktline": "taktline", "nodered": "Node-RED"}
RATES = (5_000, 10_000, 15_000, 20_000, 30_000, 40_000)
QUICK_RATES = (500, 2_000)
PUBLISH_S = 15.0
QUICK_PUBLISH_S = 3.0
GRACE_S = 3.0
SETTLE_S = 5.0
SETTLE_MAX_S = 15.0
POLL_S = 0.25
START_TIMEOUT_S = 60.0
_COUNT_QUERY = "SELECT count(total) FROM production"


class NodeRedMissingError(RuntimeError):
    """Node.js or the pinned Node-RED packages are not installed."""


def node_red_argv(peers: Path | None = None) -> list[str]:
    """The command that starts the pinned Node-RED of `peers` (default PEERS) with its
    settings.js; a clear error naming what to install when Node.js or the packages are missing."""
    peers = peers or PEERS
    node = shutil.which("node")
    if node is None:
        raise NodeRedMissingError(
            "Node.js is not on PATH: install Node.js 18.5 or newer (Debian: nodejs npm), "
            f"then run `{INSTALL_COMMAND}` in the repository"
        )
    modules = peers / "node_modules"
    red = modules / "node-red" / "red.js"
    if not red.exists() or not (modules / "node-red-contrib-influxdb" / "package.json").exists():
        raise NodeRedMissingError(
            f"Node-RED is not installed in {peers}: run `{INSTALL_COMMAND}` in the repository"
        )
    return [node, str(red), "--settings", str(peers / "settings.js")]


def nodered_child(
    node_red: Sequence[str], work: Path, mqtt_port: int, influx_url: str, database: str
) -> Child:
    """Node-RED running bench/peers/flow.json (copied into `work`, its user folder there too)
    against the broker on `mqtt_port` and database `database` of the influxd at `influx_url`.
    Its stdout events: `connected` (to the broker), `log` (node errors and warnings)."""
    flow = work / "flow.json"
    shutil.copyfile(PEERS / "flow.json", flow)  # Node-RED may write beside its flow file
    env = {
        "TAKT_FLOW_FILE": str(flow),
        "TAKT_MQTT_PORT": str(mqtt_port),
        "TAKT_INFLUX_PORT": influx_url.rsplit(":", 1)[1],
        "TAKT_INFLUX_DB": database,
    }
    argv = ["env", *(f"{k}={v}" for k, v in env.items()), *node_red]  # env execs node: one pid
    argv += ["--userDir", str(work / "nodered")]
    return Child("Node-RED", argv, work / "nodered.log", work)


async def run(options: Options, progress: ProgressLine) -> BenchResult:
    """Both systems at rising rates until each misses one; see the module docstring."""
    node_red = node_red_argv()
    rates = options.sizes or (QUICK_RATES if options.quick else RATES)
    seconds = options.window_s or (QUICK_PUBLISH_S if options.quick else PUBLISH_S)
    figures: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="taktline-bench-nodered-") as name,
        _bars() as bars,
    ):
        folder = Path(name)
        (folder / "influxd").mkdir()
        with run_influxd(folder / "influxd") as influxd:
            influx = _Influx(influxd.url, influxd.process.pid)
            steps = bars.add_task("rate steps", total=len(rates) * len(SYSTEMS))
            stopped: set[str] = set()
            for rate in rates:
                for system in SYSTEMS:
                    if system not in stopped:
                        step = _Step(system, rate, seconds, folder / f"{system}-{rate}")
                        figure = await step.run(influx, node_red, bars)
                        figures.append(figure)
                        progress(f"{NAME}: {_describe(figure)}")
                        if not figure["sustained"]:
                            stopped.add(system)
                    bars.advance(steps)
    _compare(figures)
    return BenchResult(
        name=NAME,
        title="Peer: MQTT -> InfluxDB, taktline edge vs. Node-RED, highest rate without loss",
        parameters={
            "rates": list(rates),
            "publish_s": seconds,
            "grace_s": GRACE_S,
            "settle_s": SETTLE_S,
            "settle_max_s": SETTLE_MAX_S,
            "payload_bytes": 80,
            "qos": 1,
            "broker": "mosquitto (Debian), 127.0.0.1, "
            + ", ".join(f"{k} {v}" for k, v in BROKER_CONF.items()),
            "influxd": "Debian influxdb 1.x, 127.0.0.1, v1 /write, a fresh database per run",
            "taktline": "taktline edge: MQTT source (MQTT 5, persistent session), one `total` "
            "counter, outbox commit 50 ms, InfluxDB v1 sink batch 5000 / flush 1 s / gzip",
            "nodered": _nodered_versions(),
            "publisher": "bench.mqtt_pace: QoS 1, evenly paced, 5 ms ticks",
        },
        figures=figures,
        table=_table(figures),
        summary=_summary(figures),
        notes=[
            f"sustained: every message is a point in InfluxDB within {GRACE_S:g} s of the last "
            "publish; a system's steps end at its first rate not sustained.",
            "CPU is % of one core over the publishing window (every thread of the process); "
            "RSS is the consumer's peak (VmHWM) at the end of its run, start-up included.",
            "cpu_vs_nodered and rss_peak_vs_nodered (taktline's rows) are taktline / Node-RED "
            "at the same rate, measured in the same run.",
            "drain_s: from the last publish until the count was seen complete (polled every "
            f"{POLL_S:g} s, so an upper bound).",
            "Node-RED writes fields as floats (node-influx without a schema) and without gzip; "
            "taktline writes integers, gzip level 1.",
            "The machine is shared: the publisher, Mosquitto, influxd and the consumer compete "
            "for its cores (machine_cpu_percent: 100 per busy core).",
        ],
    )


class _Influx:
    """The benchmark's influxd: databases, point counts, and its pid (for its CPU)."""

    def __init__(self, url: str, pid: int) -> None:
        self.url = url
        self.pid = pid

    async def query(self, params: dict[str, str]) -> Any:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            answer = await client.post("/query", params=params)
        answer.raise_for_status()
        return answer.json()

    async def create(self, database: str) -> None:
        await self.query({"q": f'CREATE DATABASE "{database}"'})

    async def drop(self, database: str) -> None:
        await self.query({"q": f'DROP DATABASE "{database}"'})

    async def count(self, database: str) -> int:
        """Points of `production` in `database`."""
        result = (await self.query({"db": database, "q": _COUNT_QUERY}))["results"][0]
        if "error" in result:
            raise RuntimeError(f"influxd: {result['error']}")
        series = result.get("series")
        return int(series[0]["values"][0][1]) if series else 0


class _Step:
    """One system at one rate: broker, database, consumer, publisher, counts."""

    def __init__(self, system: str, rate: int, seconds: float, work: Path) -> None:
        self.system = system
        self.rate = rate
        self.seconds = seconds
        self.work = work
        self.database = f"{system}_{rate}"
        self.client_id = f"bench-{system}"
        self.label = f"{LABELS[system]} at {rate:,} msgs/s"
        self.health_url = ""

    async def run(self, influx: _Influx, node_red: list[str], bars: Progress) -> dict[str, Any]:
        self.work.mkdir()
        await influx.create(self.database)
        async with self._broker() as (port, broker_pid):
            await self._register(port)
            if self.system == "taktline":
                consumer = self._taktline(port, influx.url)
            else:
                consumer = self._nodered(node_red, port, influx.url)
            async with running(consumer):
                await self._ready(consumer)
                figure = await self._measure(consumer, port, broker_pid, influx, bars)
        await influx.drop(self.database)
        return figure

    @contextlib.asynccontextmanager
    async def _broker(self) -> AsyncIterator[tuple[int, int]]:
        port = free_port()
        conf = self.work / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\n"
            + "".join(f"{k} {v}\n" for k, v in BROKER_CONF.items()),
            encoding="utf-8",
        )
        binary = shutil.which("mosquitto", path="/usr/sbin:/usr/bin") or "mosquitto"
        broker = await asyncio.create_subprocess_exec(
            binary,
            "-c",
            str(conf),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await wait_for_port("127.0.0.1", port)
            yield port, broker.pid
        finally:
            broker.terminate()
            await broker.wait()

    async def _register(self, port: int) -> None:
        argv = [sys.executable, "-m", "bench.mqtt_load", "register", "--port", str(port)]
        argv += ["--qos", "1", "--client-id", self.client_id]
        registrar = Child("register", argv, self.work / "register.log", REPO)
        async with running(registrar):
            await registrar.wait_for("registered", START_TIMEOUT_S)

    def _taktline(self, port: int, influx_url: str) -> Child:
        config = _edge_files(self.work, port, 1, self.client_id)
        edge = yaml.safe_load(config.read_text(encoding="utf-8"))
        edge["live_bus"] = {"host": "127.0.0.1", "port": port, "client_id": "bench-live-bus"}
        edge["influxdb"] = {"api": "v1", "url": influx_url, "database": self.database}
        edge["http"] = {"host": "127.0.0.1", "port": free_port()}
        config.write_text(yaml.safe_dump(edge), encoding="utf-8")
        self.health_url = f"http://127.0.0.1:{edge['http']['port']}/healthz"
        return edge_child(EdgeFiles(config, self.work / "state"), REPO)

    def _nodered(self, node_red: list[str], port: int, influx_url: str) -> Child:
        return nodered_child(node_red, self.work, port, influx_url, self.database)

    async def _ready(self, consumer: Child) -> None:
        if self.system == "nodered":
            await consumer.wait_for("connected", START_TIMEOUT_S)
            return
        deadline = time.monotonic() + START_TIMEOUT_S
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                consumer.alive()
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(self.health_url)).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"taktline edge not healthy:\n{consumer.log_tail()}")
                await asyncio.sleep(0.1)

    async def _measure(
        self, consumer: Child, port: int, broker_pid: int, influx: _Influx, bars: Progress
    ) -> dict[str, Any]:
        count = round(self.rate * self.seconds)
        sent_bar = bars.add_task(f"{self.label}: sent", total=count)
        stored_bar = bars.add_task(f"{self.label}: stored", total=count)
        meters = _Meters(consumer.pid, broker_pid, influx.pid)
        done = await self._publish(port, consumer, meters, influx, bars, (sent_bar, stored_bar))
        usage = meters.stop()
        inside = await self._edge_backlog() if self.system == "taktline" else {}
        bars.update(sent_bar, completed=count)
        counted = await self._count(influx, count, float(done["sent_at"]), bars, stored_bar)
        bars.remove_task(sent_bar)
        consumer.alive()
        rss_end, rss_peak = memory_mb(consumer.pid)
        figure: dict[str, Any] = {
            "system": self.system,
            "rate": self.rate,
            "messages": count,
            "publish_s": round(done["seconds"], 2),
            "sent_per_s": round(count / done["seconds"]),
            **counted,
            "missing": count - counted["stored"],
            "sustained": counted["stored_in_time"] == count,
            **usage,
            **inside,
            "rss_mb_peak": round(rss_peak, 1),
            "rss_mb_end": round(rss_end, 1),
            "publisher_cpu_percent": round(100 * done["cpu_s"] / done["acked_s"], 1),
        }
        if self.system == "nodered":
            logged = consumer.events.get("log", {})
            figure["node_errors"] = logged.get("node_errors", 0)
            figure["node_warnings"] = logged.get("node_warnings", 0)
        return figure

    async def _edge_backlog(self) -> dict[str, int]:
        """Where the edge's messages are: taken from the broker, waiting in the outbox."""
        async with httpx.AsyncClient(timeout=10) as client:
            health = (await client.get(self.health_url)).json()
        return {
            "taken_at_publish_end": sum(s["readings"] for s in health["sources"].values()),
            "outbox_backlog_at_publish_end": health["outbox"]["sinks"]["influxdb"]["depth"],
        }

    async def _publish(
        self,
        port: int,
        consumer: Child,
        meters: _Meters,
        influx: _Influx,
        bars: Progress,
        tasks: tuple[TaskID, TaskID],
    ) -> dict[str, Any]:
        """Run the publisher, measuring from its first message to its `done`; that line."""
        argv = [sys.executable, "-m", "bench.mqtt_pace", "--port", str(port)]
        argv += ["--rate", str(self.rate), "--seconds", str(self.seconds)]
        publisher = Child("publisher", argv, self.work / "publisher.log", REPO)
        async with running(publisher):
            await publisher.wait_for("connected", START_TIMEOUT_S)
            meters.start()
            deadline = time.monotonic() + self.seconds + START_TIMEOUT_S
            while "done" not in publisher.events:  # it exits after `done`: no alive() check
                consumer.alive()
                if time.monotonic() > deadline:
                    raise ChildError(f"the publisher did not finish:\n{publisher.log_tail()}")
                sent = publisher.events.get("progress", {}).get("sent", 0)
                bars.update(tasks[0], completed=sent)
                bars.update(tasks[1], completed=await influx.count(self.database))
                await asyncio.sleep(POLL_S)
            return publisher.events["done"]

    async def _count(
        self, influx: _Influx, count: int, sent_at: float, bars: Progress, task: TaskID
    ) -> dict[str, Any]:
        """Points now, within GRACE_S of the last publish (`sent_at`, epoch s), in the end."""
        at_end = stored = await influx.count(self.database)
        bars.update(task, completed=stored)
        while stored < count and time.time() - sent_at < GRACE_S:
            await asyncio.sleep(POLL_S)
            stored = await influx.count(self.database)
            bars.update(task, completed=stored)
        drain_s = round(time.time() - sent_at, 2) if stored == count else None
        in_time = stored
        changed = time.monotonic()
        settle_end = changed + SETTLE_MAX_S
        while stored < count and time.monotonic() < min(changed + SETTLE_S, settle_end):
            await asyncio.sleep(POLL_S)
            now = await influx.count(self.database)
            if now != stored:
                stored, changed = now, time.monotonic()
                bars.update(task, completed=stored)
        return {
            "stored_at_publish_end": at_end,
            "stored_in_time": in_time,
            "stored": stored,
            "drain_s": drain_s,
        }


class _Meters:
    """CPU of the consumer, Mosquitto, influxd and the whole machine over one window."""

    def __init__(self, consumer: int, broker: int, influxd: int) -> None:
        self.consumer, self.broker, self.influxd = Meter(consumer), Meter(broker), Meter(influxd)
        self.machine = MachineMeter()

    def start(self) -> None:
        for meter in (self.consumer, self.broker, self.influxd, self.machine):
            meter.start()

    def stop(self) -> dict[str, float]:
        return {
            "cpu_percent": round(self.consumer.stop().cpu_percent, 1),
            "broker_cpu_percent": round(self.broker.stop().cpu_percent, 1),
            "influxd_cpu_percent": round(self.influxd.stop().cpu_percent, 1),
            "machine_cpu_percent": round(self.machine.stop(), 1),
        }


@contextlib.contextmanager
def _bars() -> Iterator[Progress]:
    """Progress bars on stderr (stdout carries the JSON figures)."""
    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    with bars:
        yield bars


def _nodered_versions() -> dict[str, str]:
    modules = PEERS / "node_modules"
    versions = {}
    for package in ("node-red", "node-red-contrib-influxdb"):
        text = (modules / package / "package.json").read_text(encoding="utf-8")
        versions[package] = str(yaml.safe_load(text)["version"])  # JSON is YAML
    return versions


def _describe(f: dict[str, Any]) -> str:
    head = f"{LABELS[f['system']]} at {f['rate']:,} msgs/s: "
    if f["sustained"]:
        return head + f"sustained, {f['messages']:,} points in InfluxDB {f['drain_s']} s after"
    return head + (
        f"not sustained, {f['stored_in_time']:,} of {f['messages']:,} points within "
        f"{GRACE_S:g} s, {f['stored']:,} in the end"
    )


def _compare(figures: list[dict[str, Any]]) -> None:
    """Add taktline / Node-RED ratios at the same rate to taktline's figures."""
    nodered = {f["rate"]: f for f in figures if f["system"] == "nodered"}
    for f in figures:
        peer = nodered.get(f["rate"])
        if f["system"] == "taktline" and peer is not None:
            f["cpu_vs_nodered"] = _ratio(f["cpu_percent"], peer["cpu_percent"])
            f["rss_peak_vs_nodered"] = _ratio(f["rss_mb_peak"], peer["rss_mb_peak"])


def _summary(figures: list[dict[str, Any]]) -> dict[str, Any]:
    """Per system: the highest rate sustained, whether a rate was missed, CPU and RSS there."""
    summary: dict[str, Any] = {}
    top: dict[str, dict[str, Any] | None] = {}
    for system in SYSTEMS:
        runs = [f for f in figures if f["system"] == system]
        sustained = [f for f in runs if f["sustained"]]
        top[system] = best = sustained[-1] if sustained else None
        summary[f"{system}_max_sustained_msgs_per_s"] = best["rate"] if best else None
        summary[f"{system}_limit_found"] = len(sustained) < len(runs)
        summary[f"{system}_cpu_percent_at_max"] = best["cpu_percent"] if best else None
        summary[f"{system}_rss_mb_peak_at_max"] = best["rss_mb_peak"] if best else None
    taktline, nodered = top["taktline"], top["nodered"]
    summary["max_rate_vs_nodered"] = (
        _ratio(taktline["rate"], nodered["rate"]) if taktline and nodered else None
    )
    return summary


def _ratio(value: float, reference: float) -> float | None:
    return round(value / reference, 3) if reference else None


def _table(figures: list[dict[str, Any]]) -> Table:
    rows = [
        [
            f"{f['rate']:,}",
            LABELS[f["system"]],
            f"{f['sent_per_s']:,}",
            f"{f['stored_in_time']:,} / {f['messages']:,}",
            f"{f['stored']:,}",
            "yes" if f["sustained"] else "**no**",
            "" if f["drain_s"] is None else f"{f['drain_s']}",
            f"{f['cpu_percent']}",
            f"{f['rss_mb_peak']}",
            _times(f.get("cpu_vs_nodered")),
            _times(f.get("rss_peak_vs_nodered")),
            f"{f['broker_cpu_percent']}",
            f"{f['influxd_cpu_percent']}",
            f"{f['machine_cpu_percent']}",
        ]
        for f in figures
    ]
    headers = ["msgs/s", "system", "sent/s", f"points within {GRACE_S:g} s", "points in the end"]
    headers += ["sustained", "drain s", "CPU %", "RSS MB peak", "CPU x Node-RED"]
    headers += ["RSS x Node-RED", "broker CPU %", "influxd CPU %", "machine CPU %"]
    return Table(headers, rows)


def _times(ratio: float | None) -> str:
    return "" if ratio is None else f"{ratio:.2f}x"
