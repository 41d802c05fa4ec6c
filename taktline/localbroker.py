"""A local MQTT broker for the demo and the tests: Mosquitto from PATH, else embedded amqtt."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

log = logging.getLogger(__name__)


class BrokerUnavailableError(RuntimeError):
    """No broker could be started."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for_port(host: str, port: int, timeout_s: float = 10.0) -> None:
    """Wait until something accepts TCP connections on host:port."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if loop.time() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s}s") from None
            await asyncio.sleep(0.05)
        else:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return


@contextlib.asynccontextmanager
async def mosquitto(port: int | None = None, host: str = "127.0.0.1") -> AsyncIterator[int]:
    """Run `mosquitto` from PATH on host:port (a free one by default); yields the port."""
    binary = shutil.which("mosquitto", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if binary is None:
        raise BrokerUnavailableError("mosquitto is not installed (Debian package: mosquitto)")
    port = port or free_port(host)
    with tempfile.TemporaryDirectory(prefix="taktline-mosquitto-") as folder:
        conf = Path(folder) / "mosquitto.conf"
        conf.write_text(
            f"listener {port} {host}\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 100000\nmax_inflight_messages 1000\n",
            encoding="utf-8",
        )
        process = await asyncio.create_subprocess_exec(
            binary,
            "-c",
            str(conf),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await wait_for_port(host, port)
            yield port
        finally:
            await _stop(process)


@contextlib.asynccontextmanager
async def embedded_broker(port: int | None = None, host: str = "127.0.0.1") -> AsyncIterator[int]:
    """Run amqtt's pure-Python broker in this process; yields the port."""
    from amqtt.broker import Broker

    port = port or free_port(host)
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }
    )
    await broker.start()
    try:
        yield port
    finally:
        await broker.shutdown()


@contextlib.asynccontextmanager
async def local_broker(port: int | None = None) -> AsyncIterator[int]:
    """Mosquitto when it is installed, else the embedded broker; yields the port."""
    try:
        async with mosquitto(port) as bound:
            log.info("MQTT broker: mosquitto on 127.0.0.1:%d", bound)
            yield bound
            return
    except BrokerUnavailableError:
        log.info("mosquitto not found on PATH; using the embedded amqtt broker")
    async with embedded_broker(port) as bound:
        log.info("MQTT broker: embedded amqtt on 127.0.0.1:%d", bound)
        yield bound


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            process.kill()
            await process.wait()
