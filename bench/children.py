"""Benchmark subprocesses: start one, follow the JSON lines it prints, stop it within a bound.

A child's stderr goes to a log file; when it dies or a wait times out, the error quotes the
log's tail, so a failed benchmark says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

STOP_TIMEOUT_S = 10.0
_LOG_TAIL_CHARS = 2000

Event = dict[str, Any]


class ChildError(RuntimeError):
    """A benchmark subprocess died, or did not report in time."""


class Child:
    """One subprocess; `events` holds the latest JSON line of each `event` kind it printed."""

    def __init__(self, name: str, argv: Sequence[str], log_file: Path, cwd: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_file = log_file
        self.cwd = cwd
        self.events: dict[str, Event] = {}
        self._changed = asyncio.Condition()
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        """The process id (once started)."""
        if self._process is None:
            raise ChildError(f"{self.name} is not started")
        return self._process.pid

    async def start(self) -> None:
        """Start the process; its stdout is read as JSON lines from now on."""
        with self.log_file.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=self.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        self._reader = asyncio.create_task(self._read(), name=f"{self.name} stdout")

    def alive(self) -> None:
        """Raise ChildError when the process has ended."""
        if self._process is not None and self._process.returncode is not None:
            raise ChildError(
                f"{self.name} exited with {self._process.returncode}:\n{self.log_tail()}"
            )

    async def wait_for(self, event: str, timeout_s: float, **at_least: float) -> Event:
        """The first `event` line whose fields reach `at_least` (e.g. `changes=100`)."""
        try:
            async with asyncio.timeout(timeout_s), self._changed:
                while True:
                    self.alive()
                    found = self.events.get(event)
                    if found is not None and all(found[k] >= v for k, v in at_least.items()):
                        return found
                    await self._changed.wait()
        except TimeoutError:
            raise ChildError(
                f"{self.name}: no '{event}' {at_least or ''} within {timeout_s:.0f}s:\n"
                f"{self.log_tail()}"
            ) from None

    def latest(self, event: str) -> Event:
        """The newest line of this kind; raises ChildError when there is none or it died."""
        self.alive()
        found = self.events.get(event)
        if found is None:
            raise ChildError(f"{self.name} has not reported '{event}' yet")
        return found

    async def stop(self) -> None:
        """SIGINT (a clean stop), then SIGKILL after STOP_TIMEOUT_S."""
        process = self._process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    def log_tail(self) -> str:
        """The end of the child's stderr log."""
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"(no log: {exc.strerror})"
        return text[-_LOG_TAIL_CHARS:]

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        async for raw in self._process.stdout:
            try:
                event = json.loads(raw)
            except json.JSONDecodeError:
                continue  # not a report line: a library printed something
            if isinstance(event, dict) and "event" in event:
                async with self._changed:
                    self.events[str(event["event"])] = event
                    self._changed.notify_all()
        async with self._changed:  # wake waiters: the child ended
            self._changed.notify_all()


@contextlib.asynccontextmanager
async def running(child: Child) -> AsyncIterator[Child]:
    """Start the child, and stop it on leaving, also on error."""
    await child.start()
    try:
        yield child
    finally:
        await child.stop()
