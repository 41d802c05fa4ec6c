"""A server replica as the plant runs it: `taktline server --config F` in its own process, which a
test can SIGKILL (a crash), and ask whether it runs the alerts (`GET /metrics`).

Every wait for the process runs in a thread (`asyncio.to_thread`): the simulator and the edge
may share the test's event loop.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.fixtures.processes import crash, interrupt

RUNNING = re.compile(r"^taktline_server_alerts_running (\S+)$", re.MULTILINE)


def write_replica_config(
    folder: Path,
    plant_file: Path,
    *,
    name: str,
    mqtt_port: int,
    http_port: int,
    store_env: str,
    signing_key: Path,
    smtp: tuple[str, int],
) -> Path:
    """Write `<name>.yaml` into `folder` (its state in `folder/<name>`): a replica sharing the
    store named by the environment variable `store_env`, mailing through `smtp` (host, port),
    with no reminders; its path."""
    host, port = smtp
    settings: dict[str, Any] = {
        "plant": str(plant_file),
        "state_dir": str(folder / name),
        "state_store": {"env": store_env},
        "live_bus": {"host": "127.0.0.1", "port": mqtt_port, "client_id": f"taktline-{name}"},
        "http": {"host": "127.0.0.1", "port": http_port},
        "alerts": {
            "delivery": {
                "public_url": f"http://127.0.0.1:{http_port}",
                "smtp": {
                    "host": host,
                    "port": port,
                    "from": "taktline@plant.example",
                    "starttls": False,
                },
                "retry": {"max_attempts": 2, "min_backoff_s": 0.01, "max_backoff_s": 0.02},
                "ack": {"signing_key": {"file": str(signing_key)}},
            },
            "repeat_minutes": 0,
        },
    }
    config = folder / f"{name}.yaml"
    config.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return config


class ServerProcess:
    """One `taktline server` process for `config`, its output in `log`, `env` added to its
    environment."""

    def __init__(self, config: Path, log: Path, http_port: int, env: dict[str, str]) -> None:
        self.config, self.log = config, log
        self.url = f"http://127.0.0.1:{http_port}"
        self.env = env
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server."""
        assert self._process is None, "started already"
        command = [sys.executable, "-c", "from taktline.cli import main; main()"]
        with self.log.open("ab") as out:
            self._process = subprocess.Popen(
                [*command, "server", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
            )

    @property
    def exit_code(self) -> int | None:
        """None while it runs."""
        assert self._process is not None, "not started"
        return self._process.poll()

    async def kill(self) -> None:
        """SIGKILL (a crash: nothing is closed), and wait for the process to end."""
        assert self._process is not None and self._process.poll() is None, "not running"
        await crash(self._process)

    async def stop(self) -> None:
        """SIGINT; SIGKILL after 15 s."""
        await interrupt(self._process)

    async def runs_alerts(self) -> bool | None:
        """Whether it runs the alerts (`taktline_server_alerts_running`); None while it does not
        answer."""
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                response = await client.get(f"{self.url}/metrics")
        except httpx.HTTPError:
            return None
        found = RUNNING.search(response.text)
        assert found is not None, "no taktline_server_alerts_running in /metrics"
        return float(found.group(1)) == 1

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's output."""
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
