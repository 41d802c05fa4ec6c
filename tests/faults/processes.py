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
    """SIGINT, as a service manager stops it; after STOP_TIMEOUT_S SIGUSR1 (the process prints
    its threads' stacks to its log) and SIGKILL. Nothing when it is not running. Waited for in
    a thread: a server the process says goodbye to may run on the caller's event loop."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        await asyncio.to_thread(process.wait, STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGUSR1)
        await asyncio.sleep(1.0)
        process.kill()
        await asyncio.to_thread(process.wait, STOP_TIMEOUT_S)
