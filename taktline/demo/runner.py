"""Wires the simulator, one edge and the server together on a local MQTT broker.

No InfluxDB is needed: the edge's SQLite outbox keeps the history; InfluxDB (v1 API) is written
when `--influxdb URL` names one. The broker is Mosquitto from PATH, else embedded amqtt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml

from edge.agent import EdgeAgent
from server.app import Server
from taktline.config import EdgeConfig, EdgeSettings, InfluxV1, ServerConfig, ServerSettings
from taktline.config.loader import load_plant
from taktline.localbroker import local_broker
from taktline.model import CounterPath, HttpListen, MqttConnection, Plant
from taktline.sim.relocate import relocate
from taktline.sim.simulator import PlantSimulator

PLANT_FILE = Path(__file__).with_name("plant.yaml")
RATE_PER_MIN = 30.0
"""Units per minute per line: fast enough that counts visibly rise within seconds."""
RESET_EVERY_S = 90.0
"""Mean seconds between simulated PLC resets per station, so the edge shows it survives them."""
PROGRESS_EVERY_S = 10.0
SETTLE_S = 15.0
QUIET_S = 1.5

log = logging.getLogger(__name__)


async def run_demo(
    *,
    duration: float | None,
    port: int,
    state_dir: Path | None,
    influxdb: str | None = None,
) -> None:
    """Run until `duration` seconds pass (None: until Ctrl-C or a part stops)."""
    with _state_folder(state_dir) as state:
        async with local_broker() as mqtt_port:
            plant = relocate(load_plant(PLANT_FILE), mqtt_port=mqtt_port)
            plant_file = state / "plant.yaml"
            plant_file.write_text(
                yaml.safe_dump(plant.model_dump(mode="json", exclude_none=True), sort_keys=False),
                encoding="utf-8",
            )
            edge_config, server_config = local_configs(
                plant,
                plant_file,
                state,
                mqtt_port=mqtt_port,
                http_port=port,
                influxdb=InfluxV1(api="v1", url=influxdb) if influxdb else None,
            )
            async with (
                PlantSimulator(
                    plant, rate_per_min=RATE_PER_MIN, reset_every_s=RESET_EVERY_S, paused=True
                ) as sim,
                EdgeAgent(edge_config) as edge,
                Server(server_config) as server,
            ):
                baseline = await first_totals(edge, list(sim.ground_truth()))
                sim.resume()
                _announce(plant, server.url, state, mqtt_port)
                parts = [
                    asyncio.create_task(edge.run(), name="edge"),
                    asyncio.create_task(server.wait(), name="server"),
                    asyncio.create_task(_progress(server.url, duration), name="progress"),
                ]
                try:
                    done, _ = await asyncio.wait(parts, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        task.result()
                finally:
                    for task in parts:
                        task.cancel()
                    await asyncio.gather(*parts, return_exceptions=True)
                    sim.pause()
                    await sim.settle()
                    await until_quiet(edge, list(baseline))
                    with contextlib.suppress(TimeoutError):
                        await edge.wait_synced(timeout=SETTLE_S)
                    _summary(sim, edge, baseline)


def local_configs(
    plant: Plant,
    plant_file: Path,
    state: Path,
    *,
    mqtt_port: int,
    http_port: int,
    influxdb: InfluxV1 | None,
) -> tuple[EdgeConfig, ServerConfig]:
    """One edge for every source of `plant` and the server, on a local broker (the demo's
    wiring; the end-to-end test uses it too). The edge's health port is any free one."""
    bus = MqttConnection(port=mqtt_port)
    edge = EdgeSettings(
        plant=plant_file,
        edge_id="demo-edge",
        state_dir=state / "edge",
        live_bus=bus.model_copy(update={"client_id": "taktline-demo-edge"}),
        influxdb=influxdb,
        http=HttpListen(port=0),
    )
    server = ServerSettings(
        plant=plant_file,
        live_bus=bus.model_copy(update={"client_id": "taktline-demo-server"}),
        http=HttpListen(port=http_port),
        state_dir=state / "server",
    )
    return EdgeConfig(edge, plant), ServerConfig(server, plant)


def _announce(plant: Plant, url: str, state: Path, mqtt_port: int) -> None:
    print(f"taktline demo: {plant.name}", flush=True)
    print(f"  plant overview   {url}/", flush=True)
    for placed in plant.lines():
        print(f"  line screen      {url}/lines/{placed.line.id}   ({placed.line.name})", flush=True)
    print(f"  API              {url}/api/lines   (OpenAPI: {url}/docs)", flush=True)
    print(f"  live bus         mqtt://127.0.0.1:{mqtt_port}  topic taktline/v1/#", flush=True)
    print(f"  state            {state}", flush=True)
    print("Ctrl-C stops.", flush=True)


async def _progress(url: str, duration: float | None) -> None:
    """Print every line's shift count every few seconds; return after `duration`."""
    loop = asyncio.get_running_loop()
    deadline = None if duration is None else loop.time() + duration
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        while deadline is None or loop.time() < deadline:
            wait = (
                PROGRESS_EVERY_S
                if deadline is None
                else min(PROGRESS_EVERY_S, deadline - loop.time())
            )
            await asyncio.sleep(max(wait, 0))
            try:
                lines = (await client.get("/api/lines")).json()
            except httpx.HTTPError as exc:
                log.warning("cannot read %s/api/lines: %s", url, exc)
                continue
            print(
                "  ".join(
                    f"{line['line']}: {line['shift_count']} ({line['status']})" for line in lines
                ),
                flush=True,
            )


async def first_totals(edge: EdgeAgent, paths: list[CounterPath]) -> dict[CounterPath, int]:
    """Wait (production paused) until the edge has read every counter once; their totals."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_S
    while loop.time() < deadline:
        totals = {path: edge.total(path) for path in paths}
        if all(total is not None for total in totals.values()):
            return {path: total for path, total in totals.items() if total is not None}
        await asyncio.sleep(0.1)
    missing = [str(path) for path in paths if edge.total(path) is None]
    raise RuntimeError(f"the edge read nothing from {', '.join(missing)} in {SETTLE_S:g}s")


async def until_quiet(edge: EdgeAgent, paths: list[CounterPath]) -> None:
    """Wait (at most SETTLE_S) until the edge's totals stood still for QUIET_S: the last
    notifications travel from the simulator's servers to the edge after production stopped."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_S
    last = {path: edge.total(path) for path in paths}
    quiet_since = loop.time()
    while loop.time() < deadline and loop.time() - quiet_since < QUIET_S:
        await asyncio.sleep(0.1)
        now = {path: edge.total(path) for path in paths}
        if now != last:
            last, quiet_since = now, loop.time()


def _summary(sim: PlantSimulator, edge: EdgeAgent, baseline: dict[CounterPath, int]) -> None:
    """Units the simulator produced against units the edge counted, per counter."""
    print(f"{'counter':<40} {'produced':>9} {'counted':>9}  lifetime total", flush=True)
    for path, units in sorted(sim.ground_truth().items()):
        total = edge.total(path) or 0
        counted = total - baseline[path]
        mark = "ok" if counted == units else "MISMATCH"
        print(f"{path!s:<40} {units:>9} {counted:>9}  {total:>14,}  {mark}", flush=True)


@contextlib.contextmanager
def _state_folder(state_dir: Path | None) -> Iterator[Path]:
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
        yield state_dir.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="taktline-demo-") as folder:
        yield Path(folder)
