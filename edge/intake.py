"""The bounded buffer between the edge's reader tasks and its committer."""

from __future__ import annotations

import asyncio
import sys

from taktline.records import Reading


class Intake:
    """The bounded buffer between the reader tasks and the committer (overflow policy BLOCK).

    Readers add one reading at a time and wait while `maxsize` readings wait; the committer
    takes them as lists. An asyncio.Queue costs a put and a get (and their wake-up bookkeeping)
    per reading; this costs a list append.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: list[Reading] = []
        self._room = asyncio.Event()
        self._room.set()
        self._arrived = asyncio.Event()
        self._wake_at = sys.maxsize
        """How many waiting readings wake the committer (none while it does not wait)."""

    def __len__(self) -> int:
        return len(self._items)

    def add(self, reading: Reading) -> bool:
        """Add a reading; False (and nothing added) while the intake is full."""
        items = self._items
        if len(items) >= self.maxsize:
            self._room.clear()
            return False
        items.append(reading)
        if len(items) >= self._wake_at:
            self._arrived.set()
        return True

    async def put(self, reading: Reading) -> None:
        """Add a reading, waiting for room while the intake is full (back-pressure)."""
        while not self.add(reading):
            await self._room.wait()

    async def wait_for(self, count: int) -> None:
        """Return once at least `count` readings wait (at once when they already do)."""
        if len(self._items) >= count:
            return
        self._wake_at = count
        self._arrived.clear()
        try:
            await self._arrived.wait()
        finally:
            self._wake_at = sys.maxsize

    def take(self, most: int) -> list[Reading]:
        """The oldest waiting readings, at most `most`, in arrival order; they leave the intake."""
        items = self._items
        if len(items) <= most:
            self._items = []
        else:
            self._items = items[most:]
            items = items[:most]
        self._room.set()
        return items
