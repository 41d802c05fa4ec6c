"""An influxd that can be stopped and started again on the same port with the same data.

It starts as `tests.fixtures.services.run_influxd` starts it (that writes `influxdb.conf` into
its folder) and restarts the same binary with that configuration.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.fixtures.services import InfluxService, require_binary, run_influxd, wait_until

STOP_TIMEOUT_S = 10.0


class RestartableInflux:
    """The running `service` (its `process` is replaced at each start)."""

    def __init__(self, service: InfluxService, folder: Path) -> None:
        self.service = service
        self._conf = folder / "influxdb.conf"
        self._log = folder / "influxd.log"
        self._first = service.process
        assert self._conf.exists(), "run_influxd keeps its configuration in influxdb.conf"

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop it with `sig` (SIGTERM: a clean stop; SIGKILL: a crash). Blocks."""
        process = self.service.process
        process.send_signal(sig)
        process.wait(STOP_TIMEOUT_S)

    def start(self) -> None:
        """Start it again on the same port and data; return once it answers /ping. Blocks."""
        with self._log.open("ab") as log:
            self.service.process = subprocess.Popen(
                [require_binary("influxd", "influxdb"), "-config", str(self._conf)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=os.environ | {"INFLUXDB_CONFIG_PATH": str(self._conf)},
            )
        url = self.service.url
        wait_until(lambda: httpx.get(f"{url}/ping", timeout=1).status_code == 204, 30, "influxd")

    def close(self) -> None:
        """Stop a process this object started (run_influxd stops the first one)."""
        process = self.service.process
        if process is not self._first and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def restartable_influxd(folder: Path) -> Iterator[RestartableInflux]:
    """influxd in `folder` on free ports, restartable."""
    with run_influxd(folder) as service:
        influx = RestartableInflux(service, folder)
        try:
            yield influx
        finally:
            influx.close()
