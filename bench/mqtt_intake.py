"""MQTT intake: messages/s from Mosquitto through the collector into the durable outbox.

Method: for each QoS and each consumer, a fresh Mosquitto (settings in `BROKER_CONF`); the
consumer's persistent session is registered (subscribed, then gone); the publisher puts N
80-byte JSON messages into the broker, which queues them for the session; then the consumer
starts and drains them. The rate is N over the consumer's first-to-last-message window, so the
publisher's own speed never limits it. Consumers, each its own process:

- `mosquitto_sub` (C, Debian `mosquitto-clients`): the limit of broker + loopback;
- `paho`: a bare paho-mqtt 2 subscriber that only counts (automatic acknowledgement);
- `aiomqtt`: aiomqtt that only counts (one asyncio hand-off per message: the design before);
- `collector`: taktline's MqttCollector (paho thread, batches to asyncio, parsing, readings,
  acknowledgement after the consumer took them, in chunks of 500);
- `edge`: a whole EdgeAgent: collector -> counter logic -> SQLite outbox (WAL,
  synchronous=FULL); QoS 1 messages acknowledged only after their commit. Its live bus points
  at a closed port, so the figure is intake into the outbox, not live-bus publishing.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.mqtt_load import COUNTER, RECEIVE_MAXIMUM, TOPIC
from bench.procstat import cpu_seconds, memory_mb
from bench.results_model import BenchResult, Options, Progress, Table
from taktline.localbroker import free_port, wait_for_port

NAME = "mqtt_intake"
GOALS = {0: 45_000, 1: 30_000}
"""msgs/s into the durable outbox (the `edge` consumer), from the issue."""
CONSUMERS = ("mosquitto_sub", "paho", "aiomqtt", "collector", "edge")
COMMIT_INTERVAL_MS = 50
BROKER_CONF = {
    "persistence": "false",
    "max_queued_messages": "0",
    "max_queued_bytes": "0",
    "max_inflight_messages": "0",
    "queue_qos0_messages": "true",
}
"""Mosquitto's defaults (max_queued_messages 1000, max_inflight_messages 20) drop messages
to a slow QoS 1 subscriber and cap its rate: the broker must queue the whole backlog for the
session (0 = no limit) and leave the in-flight window to the client's Receive Maximum."""
_TIMEOUT_S = 600.0


async def run(options: Options, progress: Progress) -> BenchResult:
    """Every consumer at QoS 0 and 1; medians of 3 runs (1 with --quick)."""
    count = (options.sizes or ((20_000,) if options.quick else (200_000,)))[0]
    repeats = 1 if options.quick else 3
    consumers = [c for c in CONSUMERS if c != "mosquitto_sub" or shutil.which("mosquitto_sub")]
    runs: dict[tuple[int, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="taktline-bench-mqtt-") as folder:
        for qos in (0, 1):
            for repeat in range(repeats):
                for consumer in consumers:
                    progress(f"{NAME}: QoS {qos}, {consumer}, run {repeat + 1}/{repeats}")
                    work = Path(folder) / f"q{qos}-{consumer}-{repeat}"
                    work.mkdir()
                    figures = await _one_run(work, consumer, qos, count)
                    runs.setdefault((qos, consumer), []).append(figures)
    results = [_median(qos, consumer, samples) for (qos, consumer), samples in runs.items()]
    for figure in results:
        limit = _rate(results, figure["qos"], "mosquitto_sub")
        bare = _rate(results, figure["qos"], "paho")
        figure["vs_mosquitto_sub"] = _ratio(figure["msgs_per_s"], limit)
        figure["vs_paho"] = _ratio(figure["msgs_per_s"], bare)
    summary = {
        f"edge_qos{qos}": {
            "msgs_per_s": _rate(results, qos, "edge"),
            "goal": goal,
            "met": (_rate(results, qos, "edge") or 0) >= goal,
        }
        for qos, goal in GOALS.items()
    }
    return BenchResult(
        name=NAME,
        title="MQTT intake: Mosquitto -> collector -> durable outbox",
        parameters={
            "messages": count,
            "payload_bytes": 80,
            "repeats": repeats,
            "statistic": "median",
            "broker": "mosquitto (Debian), 127.0.0.1, "
            + ", ".join(f"{k} {v}" for k, v in BROKER_CONF.items()),
            "protocol": "MQTT 5, persistent session, backlog queued before the window",
            "receive_maximum": RECEIVE_MAXIMUM,
            "edge": f"commit_interval_ms {COMMIT_INTERVAL_MS}, one `total` counter, no InfluxDB,"
            " live bus unreachable",
            "cpu_count": os.cpu_count(),
        },
        figures=results,
        table=_table(results),
        summary=summary,
        notes=[
            "CPU is the consumer process's CPU time over its window, as % of one core "
            "(every thread); RSS is its peak. broker_cpu_percent is Mosquitto's over the same run.",
            "vs_mosquitto_sub and vs_paho are ratios of msgs/s measured in the same run.",
            "The machine is shared and has 2 cores: the broker, the consumer and anything else "
            "running compete for them.",
        ],
    )


async def _one_run(work: Path, consumer: str, qos: int, count: int) -> dict[str, float]:
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        + "".join(f"{k} {v}\n" for k, v in BROKER_CONF.items())
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
        client_id = f"bench-{consumer}"
        if consumer == "mosquitto_sub":
            await _exec([*_mosquitto_sub(port, qos, client_id), "-E"])
        else:
            await _load(
                work, "register", "--port", str(port), "--qos", str(qos), "--client-id", client_id
            )
        await _load(work, "publish", "--port", str(port), "--qos", str(qos), "--count", str(count))
        broker_cpu0 = cpu_seconds(broker.pid)
        if consumer == "mosquitto_sub":
            figures = await _measure_c([*_mosquitto_sub(port, qos, client_id), "-C", str(count)])
        elif consumer == "edge":
            config = _edge_files(work, port, qos, client_id)
            figures = await _load(work, "edge", "--config", str(config), "--count", str(count))
        else:
            figures = await _load(
                work,
                consumer,
                "--port",
                str(port),
                "--qos",
                str(qos),
                "--count",
                str(count),
                "--client-id",
                client_id,
            )
        figures["broker_cpu_s"] = cpu_seconds(broker.pid) - broker_cpu0
        return figures
    finally:
        broker.terminate()
        await broker.wait()


def _mosquitto_sub(port: int, qos: int, client_id: str) -> list[str]:
    return [
        "mosquitto_sub",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-V",
        "5",
        "-i",
        client_id,
        "-c",
        "-x",
        "3600",
        "-q",
        str(qos),
        "-t",
        TOPIC,
    ]


async def _exec(argv: list[str]) -> None:
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL)
    if await asyncio.wait_for(process.wait(), _TIMEOUT_S):
        raise RuntimeError(f"{argv[0]} failed")


async def _load(work: Path, *args: str) -> dict[str, float]:
    """Run `python -m bench.mqtt_load ARGS` (stderr to a log in `work`); its JSON line `done`
    (or its last one)."""
    log = work / f"{args[0]}.log"
    with log.open("wb") as errors:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.mqtt_load",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=errors,
        )
        out, _ = await asyncio.wait_for(process.communicate(), _TIMEOUT_S)
    if process.returncode:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"bench.mqtt_load {args[0]} failed ({process.returncode}): {tail}")
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    done = next((line for line in lines if line["event"] == "done"), lines[-1])
    return {k: v for k, v in done.items() if isinstance(v, int | float)}


async def _measure_c(argv: list[str]) -> dict[str, float]:
    """A C consumer: wall time from start to exit; CPU and peak RSS from wait4's rusage."""
    started = time.monotonic()
    pid = os.posix_spawnp(  # noqa: ASYNC221 (returns at once; wait4 runs in a thread)
        argv[0],
        argv,
        dict(os.environ),
        file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)],
    )
    peak = asyncio.create_task(_peak_rss_mb(pid))
    _, status, usage = await asyncio.to_thread(os.wait4, pid, 0)
    peak.cancel()
    if status:
        raise RuntimeError(f"{argv[0]} exited with status {status}")
    return {
        "count": float(argv[argv.index("-C") + 1]),
        "seconds": time.monotonic() - started,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_mb": _last_peak.get(pid, 0.0),
    }


_last_peak: dict[int, float] = {}


async def _peak_rss_mb(pid: int) -> None:
    """Follow the process's VmHWM (ru_maxrss would count the benchmark's own memory, shared
    between spawn and exec) until it ends; the last reading is in `_last_peak`."""
    while True:
        try:
            _last_peak[pid] = memory_mb(pid)[1]
        except (OSError, KeyError):
            return
        await asyncio.sleep(0.02)


def _edge_files(work: Path, broker_port: int, qos: int, client_id: str) -> Path:
    site, area, line, station, counter = COUNTER.split("/")
    plant: dict[str, Any] = {
        "name": "mqtt benchmark",
        "sites": [
            {
                "id": site,
                "name": "B",
                "areas": [
                    {
                        "id": area,
                        "name": "A",
                        "lines": [
                            {
                                "id": line,
                                "name": "L",
                                "output": f"{station}/{counter}",
                                "target": {"takt_seconds": 60},
                                "stations": [
                                    {
                                        "id": station,
                                        "name": "S",
                                        "counters": [
                                            {"name": counter, "bits": 64, "max_rate_per_min": 1e9}
                                        ],
                                    }
                                ],
                            }
                        ],
                    }
                ],
            }
        ],
        "shift_calendars": {
            "default": {
                "timezone": "UTC",
                "shifts": [{"name": "all-day", "start": "00:00", "end": "00:00"}],
            }
        },
        "sources": [
            {
                "type": "mqtt",
                "id": "bench",
                "qos": qos,
                "receive_maximum": RECEIVE_MAXIMUM,
                "broker": {"port": broker_port, "client_id": client_id},
                "topics": [
                    {"topic": TOPIC, "counter": COUNTER, "value": "count", "timestamp": "ts"}
                ],
            }
        ],
    }
    (work / "plant.yaml").write_text(yaml.safe_dump(plant))
    edge = work / "edge.yaml"
    edge.write_text(
        yaml.safe_dump(
            {
                "plant": "plant.yaml",
                "edge_id": "bench",
                "state_dir": "state",
                "live_bus": {"host": "127.0.0.1", "port": free_port()},
                "outbox": {"commit_interval_ms": COMMIT_INTERVAL_MS},
                "http": {"host": "127.0.0.1", "port": 0},
            }
        )
    )
    return edge


def _median(qos: int, consumer: str, samples: list[dict[str, float]]) -> dict[str, Any]:
    rates = [s["count"] / s["seconds"] for s in samples]
    middle = sorted(range(len(samples)), key=rates.__getitem__)[len(samples) // 2]
    sample = samples[middle]
    return {
        "qos": qos,
        "consumer": consumer,
        "msgs_per_s": round(statistics.median(rates)),
        "runs_msgs_per_s": [round(r) for r in rates],
        "cpu_percent": round(100 * sample["cpu_s"] / sample["seconds"], 1),
        "rss_mb": round(sample["rss_mb"], 1),
        "broker_cpu_percent": round(100 * sample["broker_cpu_s"] / sample["seconds"], 1),
    }


def _rate(figures: list[dict[str, Any]], qos: int, consumer: str) -> float | None:
    return next(
        (f["msgs_per_s"] for f in figures if f["qos"] == qos and f["consumer"] == consumer), None
    )


def _ratio(value: float, reference: float | None) -> float | None:
    return round(value / reference, 3) if reference else None


def _table(figures: list[dict[str, Any]]) -> Table:
    rows = [
        [
            str(f["qos"]),
            f["consumer"],
            f"{f['msgs_per_s']:,}",
            f"{f['cpu_percent']}",
            f"{f['rss_mb']}",
            f"{f['broker_cpu_percent']}",
            "" if f["vs_mosquitto_sub"] is None else f"{f['vs_mosquitto_sub']:.2f}",
            "" if f["vs_paho"] is None else f"{f['vs_paho']:.2f}",
            f"{GOALS[f['qos']]:,}" if f["consumer"] == "edge" else "",
        ]
        for f in figures
    ]
    headers = [
        "QoS",
        "consumer",
        "msgs/s",
        "CPU %",
        "RSS MB",
        "broker CPU %",
        "x mosquitto_sub",
        "x paho",
        "goal",
    ]
    return Table(headers, rows)
