"""Stopping the processes of the fault suite: a crash, or a clean stop with a deadline."""

from __future__ import annotations

import asyncio
import signal
import subprocess

STOP_TIMEOUT_S = 15.0


async def crash(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL (nothing is closed), and wait for the process to end."""
    process.send_signal(signal.SIGKILL)
    await asyncio.to_thread(process.wait, STOP_TIMEOUT_S)


async def interrupt(process: subprocess.Popen[bytes] | None) -> None:
    """SIGINT, as a service manager stops it; SIGKILL after STOP_TIMEOUT_S. Nothing when it is
    not running."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        await asyncio.to_thread(process.wait, STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        await asyncio.to_thread(process.wait, STOP_TIMEOUT_S)
