"""The edge as the plant runs it: `taktline edge --config F` in its own process, which a test can
kill, stop and start again, and ask for its health (`GET /healthz`).

Every wait for the process runs in a thread (`asyncio.to_thread`): the simulator's OPC UA
servers share the test's event loop and must answer the edge meanwhile (its goodbye included).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from taktline.model.plant import Plant
from tests.fixtures.processes import crash, interrupt

EDGE_ID = "edge-faults"


def write_edge_config(
    folder: Path,
    plant: Plant,
    *,
    mqtt_port: int,
    influx_url: str,
    database: str,
    http_port: int,
    state_dir: Path,
) -> Path:
    """Write `plant.yaml` and `edge.yaml` into `folder`; the edge config's path.

    InfluxDB is written every 200 ms with a 2 s timeout, the outbox commits every 20 ms.
    """
    plant_file = folder / "plant.yaml"
    plant_file.write_text(
        yaml.safe_dump(plant.model_dump(mode="json", exclude_none=True), sort_keys=False),
        encoding="utf-8",
    )
    settings = {
        "plant": plant_file.name,
        "edge_id": EDGE_ID,
        "state_dir": str(state_dir),
        "live_bus": {"host": "127.0.0.1", "port": mqtt_port, "client_id": f"{EDGE_ID}-bus"},
        "influxdb": {
            "api": "v1",
            "url": influx_url,
            "database": database,
            "flush_interval_ms": 200,
            "timeout_s": 2,
        },
        "outbox": {"commit_interval_ms": 20},
        "http": {"host": "127.0.0.1", "port": http_port},
    }
    config = folder / "edge.yaml"
    config.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return config


class EdgeProcess:
    """One edge process at a time for `config`, its output appended to `log`.

    `prefix` runs it through another command (e.g. nsenter into a mount namespace).
    """

    def __init__(self, config: Path, log: Path, http_port: int, prefix: Sequence[str] = ()) -> None:
        self.config, self.log, self.http_port = config, log, http_port
        self.prefix = list(prefix)
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the edge (the previous process must have ended)."""
        assert self.exit_code is not None, "the edge still runs"
        command = [sys.executable, "-c", "from taktline.cli import main; main()"]
        with self.log.open("ab") as out:
            self._process = subprocess.Popen(
                [*self.prefix, *command, "edge", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1

    @property
    def exit_code(self) -> int | None:
        """None while it runs (also before the first start: -1)."""
        if self._process is None:
            return -1
        return self._process.poll()

    async def kill(self) -> None:
        """SIGKILL, and wait for the process to end."""
        await crash(self._require())

    async def stop(self) -> None:
        """SIGINT (the edge commits what it holds and says goodbye); SIGKILL after 15 s."""
        await interrupt(self._process)

    async def health(self) -> dict[str, Any] | None:
        """`/healthz` as JSON; None while the edge does not answer."""
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                response = await client.get(f"http://127.0.0.1:{self.http_port}/healthz")
        except httpx.HTTPError:
            return None
        body: dict[str, Any] = response.json()
        return body

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the edge's output."""
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _require(self) -> subprocess.Popen[bytes]:
        assert self._process is not None and self._process.poll() is None, "the edge is not up"
        return self._process
