"""Which server replica runs the alerts: the one that holds the state store's alert lease.

    lease = lease_for(store.database)
    if await lease.held():     # every evaluation period; cheap
        ...                    # evaluate, send, escalate
    await lease.release()      # at shutdown: another replica takes over at its next period

A SQLite store belongs to one server, which always holds the lease (`SoleLease`). On a
PostgreSQL store shared by replicas the lease is a session-level advisory lock taken on a
connection of its own (`PostgresLease`): at most one session holds it, and PostgreSQL releases
it when that session ends, so a replica that stops, crashes or loses its connection hands the
alerts over without anyone deciding. The holder checks its connection every period (one
`SELECT 1`, bounded by `CHECK_TIMEOUT_S`) and stands down when it fails; the others try the
lock every period. The session asks PostgreSQL for TCP keepalives, so the session of a replica
that vanished from the network ends (and frees the lock) within about half a minute.

What is not covered: a holder whose connection dies just after its check and before it sends
may send once more while the new holder starts; both then write the same alert rows, the
newer state winning.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from typing import Protocol

import psycopg

from server.database import Database

log = logging.getLogger(__name__)

LEASE_KEY = int.from_bytes(hashlib.sha256(b"taktline alerts").digest()[:8], "big", signed=True)
"""The advisory lock's key (locks are per database, so plants on one cluster do not meet)."""
CHECK_TIMEOUT_S = 5.0
KEEPALIVE_SETTINGS = {"tcp_keepalives_idle": 10, "tcp_keepalives_interval": 5}
"""Asked of PostgreSQL for the lease's session (with the OS's default count of probes)."""


class Lease(Protocol):
    """Whether this replica runs the alerts."""

    async def held(self) -> bool:
        """Take or keep the lease; True while this replica holds it."""
        ...

    async def release(self) -> None:
        """Give the lease up (at shutdown)."""
        ...


class SoleLease:
    """The lease of a store that only this server uses: always held."""

    async def held(self) -> bool:
        """Always True."""
        return True

    async def release(self) -> None:
        """Nothing to give up."""


class PostgresLease:
    """An advisory lock on a connection of its own to the shared store."""

    def __init__(self, conninfo: str, where: str, check_timeout_s: float = CHECK_TIMEOUT_S):
        self._conninfo = conninfo
        self._where = where
        self._timeout_s = check_timeout_s
        self._connection: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._holding = False
        self._failing = False

    async def held(self) -> bool:
        """Take the lock when free, or check that the session holding it is alive."""
        try:
            await asyncio.wait_for(self._take_or_keep(), self._timeout_s)
        except (psycopg.Error, OSError, TimeoutError) as exc:
            if self._holding:
                log.error("alerts: lost the alert lease (%s); another replica takes over", exc)
            elif not self._failing:
                log.error("alerts: cannot reach %s for the alert lease: %s", self._where, exc)
            self._failing = True
            await self._drop()
            return False
        if self._failing:
            log.info("alerts: %s answers the alert lease again", self._where)
            self._failing = False
        return self._holding

    async def release(self) -> None:
        """Unlock and close the lease's session. The unlock is answered before this returns, so
        another replica's next try takes the lease; PostgreSQL ending the session would free it
        too, but a moment after the close."""
        if self._holding and self._connection is not None:
            with contextlib.suppress(psycopg.Error, OSError, TimeoutError):
                await asyncio.wait_for(
                    self._connection.execute("SELECT pg_advisory_unlock(%s)", (LEASE_KEY,)),
                    self._timeout_s,
                )
            log.info("alerts: alert lease released")
        await self._drop()

    async def _take_or_keep(self) -> None:
        if self._connection is None or self._connection.closed:
            self._holding = False
            self._connection = await psycopg.AsyncConnection.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=max(1, int(self._timeout_s)),
                application_name="taktline-server alert lease",
            )
            for name, value in KEEPALIVE_SETTINGS.items():
                await self._connection.execute(f"SET {name} = {value}")
        if self._holding:
            await self._connection.execute("SELECT 1")
            return
        cursor = await self._connection.execute("SELECT pg_try_advisory_lock(%s)", (LEASE_KEY,))
        row = await cursor.fetchone()
        if row is not None and row[0] is True:
            self._holding = True
            log.info("alerts: this replica holds the alert lease and runs the alerts")

    async def _drop(self) -> None:
        connection, self._connection, self._holding = self._connection, None, False
        if connection is not None:
            with contextlib.suppress(psycopg.Error, OSError):  # the session is gone either way
                await connection.close()


def lease_for(database: Database, check_timeout_s: float = CHECK_TIMEOUT_S) -> Lease:
    """The lease of this store: sole for SQLite, an advisory lock for PostgreSQL (each call to
    `held` bounded by `check_timeout_s`)."""
    if database.dialect == "sqlite":
        return SoleLease()
    return PostgresLease(database.conninfo(), database.where, check_timeout_s)
