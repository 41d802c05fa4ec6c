"""An edge killed with SIGKILL while QoS 1 messages are in flight, then restarted: every
message is counted exactly once.

A real `taktline edge` process reads an MQTT source (increments with message ids, QoS 1) while
a device publishes N messages. The edge acknowledges a message only after the outbox commit
that holds it; what was committed but not acknowledged comes again after the restart and is
a duplicate by message id (the dedupe window is part of the persisted counter state).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiomqtt

from tests.fixtures.processes import interrupt
from tests.fixtures.services import MosquittoService

N = 4000
COUNTER = "s1/a1/l1/eol/tested"
PLANT = """
name: Test plant
sites:
  - id: s1
    name: Site
    areas:
      - id: a1
        name: Area
        lines:
          - id: l1
            name: Line 1
            output: eol/tested
            target: {takt_seconds: 60}
            stations:
              - id: eol
                name: EOL
                counters:
                  - {name: tested, semantics: increment}
shift_calendars:
  default:
    timezone: Europe/Berlin
    shifts: [{name: day, start: "06:00", end: "14:00"}]
sources:
  - type: mqtt
    id: eol-mqtt
    broker: {host: 127.0.0.1, port: BROKER_PORT, client_id: edge-t-eol}
    qos: 1
    topics:
      - {topic: eol/results, counter: s1/a1/l1/eol/tested, each_message_counts: true,
         message_id: vin}
"""


def write_config(folder: Path, port: int) -> Path:
    (folder / "plant.yaml").write_text(PLANT.replace("BROKER_PORT", str(port)))
    edge = folder / "edge.yaml"
    edge.write_text(
        "plant: plant.yaml\nedge_id: edge-t\nstate_dir: state\n"
        f"live_bus: {{host: 127.0.0.1, port: {port}}}\n"
        "outbox: {commit_interval_ms: 20}\nhttp: {host: 127.0.0.1, port: 0}\n"
    )
    return edge


def start_edge(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from taktline.cli import main; main()",
                "edge",
                "--config",
                str(config),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def committed(state_dir: Path, counter: str = COUNTER) -> tuple[int, int]:
    """(the counter's persisted total, the sum of the deltas of its stored updates)."""
    path = state_dir / "outbox.sqlite"
    if not path.exists():
        return 0, 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
        try:
            row = db.execute(
                "SELECT s.state FROM counter_state AS s JOIN counters AS c ON c.id = s.counter"
                " WHERE c.path = ?",
                (counter,),
            ).fetchone()
            (deltas,) = db.execute("SELECT COALESCE(SUM(delta), 0) FROM updates").fetchone()
        except sqlite3.OperationalError:  # the edge has not created its tables yet
            return 0, 0
    return (json.loads(row[0])["total"] if row else 0), int(deltas)


async def publish_all(broker: MosquittoService) -> None:
    async with aiomqtt.Client(broker.host, broker.port, identifier="eol-tester") as client:
        for n in range(N):
            await client.publish("eol/results", json.dumps({"vin": f"V{n:06d}"}), qos=1)


async def test_sigkill_mid_flow_counts_every_message_exactly_once(
    tmp_path: Path, mosquitto: MosquittoService
) -> None:
    config = write_config(tmp_path, mosquitto.port)
    state = tmp_path / "state"
    log = tmp_path / "edge.log"
    edge = start_edge(config, log)
    try:
        await wait_until(lambda: (state / "outbox.sqlite").exists(), "edge started", 30)
        await asyncio.sleep(1.0)  # its MQTT session subscribes (the session outlives the kill)
        publisher = asyncio.create_task(publish_all(mosquitto))
        await wait_until(lambda: committed(state)[0] >= N // 4, "a quarter committed", 60)
        os.kill(edge.pid, signal.SIGKILL)
        edge.wait(10)
        at_kill, _ = committed(state)
        await asyncio.wait_for(publisher, 120)  # the broker keeps them for the session
        assert at_kill < N, "the kill came too late to test anything"

        edge = start_edge(config, log)
        await wait_until(lambda: committed(state)[0] >= N, "all counted after restart", 90)
        await asyncio.sleep(1.5)  # anything redelivered late would show up now
        total, deltas = committed(state)
    finally:
        await interrupt(edge)
    assert (total, deltas) == (N, N), log.read_text()[-3000:]


async def wait_until(check: object, what: str, timeout_s: float) -> None:
    assert callable(check)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not after {timeout_s}s")
        await asyncio.sleep(0.05)


async def test_sigusr1_prints_every_threads_stack_and_the_edge_keeps_running(
    tmp_path: Path, mosquitto: MosquittoService
) -> None:
    """What an operator sends before killing an edge that does not stop (docs/operations.md)."""
    config = write_config(tmp_path, mosquitto.port)
    log = tmp_path / "edge.log"
    edge = start_edge(config, log)
    try:
        await wait_until(lambda: (tmp_path / "state" / "outbox.sqlite").exists(), "started", 30)
        edge.send_signal(signal.SIGUSR1)
        await wait_until(lambda: "most recent call first" in log.read_text(), "stacks", 10)
        running = edge.poll() is None
    finally:
        await interrupt(edge)
    text = log.read_text()
    assert running and edge.returncode == 0
    assert "Current thread" in text and "asyncio" in text  # the event loop's thread, named
