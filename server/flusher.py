"""Writes the board's shift state to the state store: every second, on demand and at the end.

One lock orders the writes, so a later state of a line is never overwritten by an earlier one.
When the store fails the changes go back to the board and are tried again on the next flush;
the failure is logged once, and the recovery once.

Corrections are added in the store (`StateStore.correct`), which replicas may share: after each
periodic save the board adopts the stored corrections of the shifts it runs, so a correction
made on another replica shows here within a period and counts in the finished shift.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterable
from typing import ParamSpec, TypeVar

from server.database import StoreError
from server.persisted import AuditEntry
from server.state import LineBoard
from server.store import StateStore

log = logging.getLogger(__name__)

FLUSH_EVERY_S = 1.0

P = ParamSpec("P")
T = TypeVar("T")


class Persister:
    """Moves `board.take_changes()` into `store`, and the stored corrections into `board`;
    `on_change(lines)` is told the lines whose corrections another replica changed."""

    def __init__(
        self,
        board: LineBoard,
        store: StateStore,
        *,
        every_s: float = FLUSH_EVERY_S,
        on_change: Callable[[Iterable[str]], None] | None = None,
    ):
        self.board = board
        self.store = store
        self.every_s = every_s
        self.on_change = on_change
        self.lock = asyncio.Lock()
        self.failing = False
        self.writes = 0

    async def flush(self, audit: AuditEntry | None = None) -> int | None:
        """Write what changed (with an audit entry); returns the entry's id. Raises StoreError
        after giving the changes back to the board."""
        async with self.lock:
            return await self._flush(audit)

    async def correct(
        self, line: str, start: dt.datetime, counter: str, delta: int, audit: AuditEntry
    ) -> int:
        """Add a correction checked by the board (`check_correction`) in the store, after what
        changed (so the running shift is stored), and adopt the line's corrections as stored;
        returns the audit entry's id. Raises StoreError, or `server.store.ShiftNotStored`
        when the stored shift is another one; the board's corrections are then unchanged."""
        async with self.lock:
            await self._flush()
            corrections, audit_id = await self._call(
                self.store.correct, line, start, counter, delta, audit
            )
            self.board.adopt_corrections(line, start, corrections)
            return audit_id

    async def sync(self) -> None:
        """Flush, then adopt the stored corrections of every line's running shift."""
        async with self.lock:
            await self._flush()
            records = await self._call(self.store.current)
            changed = [
                line
                for line, record in records.items()
                if self.board.adopt_corrections(line, record.start, record.corrections)
            ]
        if changed and self.on_change is not None:
            self.on_change(changed)

    async def read(self, query: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a read of the store off the event loop."""
        return await asyncio.to_thread(query, *args, **kwargs)

    async def run(self) -> None:
        """Sync every `every_s` until cancelled; a failing store is retried."""
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await self.sync()
            except StoreError:
                continue  # logged once in _call; the changes are back on the board

    async def _flush(self, audit: AuditEntry | None = None) -> int | None:
        changes = self.board.take_changes()
        if not changes and audit is None:
            return None
        try:
            entry_id = await self._call(self.store.save, changes, audit)
        except StoreError:
            self.board.give_back(changes)
            raise
        self.writes += 1
        return entry_id

    async def _call(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store call off the event loop; a failure is logged once, the recovery once."""
        try:
            result = await asyncio.to_thread(call, *args, **kwargs)
        except StoreError as exc:
            if not self.failing:
                log.error("state store: %s; shift counts are kept in memory and retried", exc)
                self.failing = True
            raise
        if self.failing:
            log.info("state store %s: answering again", self.store.where)
            self.failing = False
        return result
