"""Writes the board's shift state to the state store: every second, on demand and at the end.

One lock orders the writes, so a later state of a line is never overwritten by an earlier one.
When the store fails the changes go back to the board and are tried again on the next flush;
the failure is logged once, and the recovery once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
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
    """Moves `board.take_changes()` into `store`."""

    def __init__(self, board: LineBoard, store: StateStore, *, every_s: float = FLUSH_EVERY_S):
        self.board = board
        self.store = store
        self.every_s = every_s
        self.lock = asyncio.Lock()
        self.failing = False
        self.writes = 0

    async def flush(self, audit: AuditEntry | None = None) -> int | None:
        """Write what changed (with an audit entry); returns the entry's id. Raises StoreError
        after giving the changes back to the board."""
        async with self.lock:
            changes = self.board.take_changes()
            if not changes and audit is None:
                return None
            try:
                entry_id = await asyncio.to_thread(self.store.save, changes, audit)
            except StoreError as exc:
                self.board.give_back(changes)
                if not self.failing:
                    log.error("state store: %s; shift counts are kept in memory and retried", exc)
                    self.failing = True
                raise
            self.writes += 1
            if self.failing:
                log.info("state store %s: writing again", self.store.where)
                self.failing = False
            return entry_id

    async def read(self, query: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a read of the store off the event loop."""
        return await asyncio.to_thread(query, *args, **kwargs)

    async def run(self) -> None:
        """Flush every `every_s` until cancelled; a failing store is retried."""
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await self.flush()
            except StoreError:
                continue  # logged once in flush; the changes are back on the board
