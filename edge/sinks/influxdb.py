"""InfluxDB 1.x sink: line protocol over `POST /write` (database, retention policy, user/password).

Points: see edge.sinks.line_protocol (the same update always makes the same point).

Answers: see edge.sinks.influx_answers (a 5xx, 429 or network error holds the batch and retries
it, honouring Retry-After; a bad point's 400 skips the batch, counted). The v2 API is
edge.sinks.influxdb_v2.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Self

import httpx

from edge.sinks.base import SinkHealth
from edge.sinks.errors import SinkUnavailableError
from edge.sinks.influx_answers import RETRY_4XX, raise_for_answer
from edge.sinks.line_protocol import LineProtocol
from taktline.config.settings import InfluxV1
from taktline.influxwire import error_text
from taktline.records import CounterUpdate

log = logging.getLogger(__name__)

GZIP_LEVEL = 1
"""Fastest compression: line protocol shrinks about 10x already, and the edge's CPU is scarcer
than the network."""


class InfluxV1Sink:
    """Writes updates to an InfluxDB 1.x database; creates the database when it is missing."""

    name = "influxdb"

    def __init__(self, settings: InfluxV1) -> None:
        self.settings = settings
        self.batch_size = settings.batch_size
        self.flush_interval_s = settings.flush_interval_ms / 1000
        self.health = SinkHealth(self.name)
        self._client: httpx.AsyncClient | None = None
        self._database_ready = False
        self._lines = LineProtocol(settings.precision)
        self._headers = {"Content-Encoding": "gzip"} if settings.gzip else {}

    async def __aenter__(self) -> Self:
        auth = None
        if self.settings.username is not None:
            password = self.settings.password.reveal() if self.settings.password else ""
            auth = httpx.BasicAuth(self.settings.username, password)
        self._client = httpx.AsyncClient(
            base_url=self.settings.url,
            auth=auth,
            timeout=self.settings.timeout_s,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def ready(self) -> None:
        """Make sure the database exists (once; again after a 404)."""
        if self._database_ready:
            return
        database = self.settings.database
        shown = await self._request("GET", "/query", params={"q": "SHOW DATABASES"})
        if shown.status_code == 200 and database not in _database_names(shown):
            quoted = database.replace('"', '\\"')
            created = await self._request(
                "POST", "/query", params={"q": f'CREATE DATABASE "{quoted}"'}
            )
            if created.status_code == 200 and "error" not in created.text:
                log.info("influxdb: created database %r", database)
            else:
                log.warning(
                    "influxdb: cannot create database %r: %s", database, error_text(created)
                )
        self._database_ready = True
        self.health.connected = True

    async def send(self, updates: Sequence[CounterUpdate]) -> None:
        """Write the batch; raise SinkUnavailableError or BatchRejectedError (see module table)."""
        params = {"db": self.settings.database, "precision": self.settings.precision}
        if self.settings.retention_policy:
            params["rp"] = self.settings.retention_policy
        body = self._lines.body(updates)
        if self.settings.gzip:
            body = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
        response = await self._request(
            "POST", "/write", params=params, content=body, headers=self._headers
        )
        status = response.status_code
        if status == 404:
            self._database_ready = False
        if status >= 500 or status in RETRY_4XX:
            self.health.connected = False
        raise_for_answer(status, error_text(response), response.headers.get("Retry-After"))

    async def _request(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        if self._client is None:
            raise RuntimeError("the InfluxDB sink is not open")
        try:
            response = await self._client.request(
                method, path, params=params, content=content, headers=headers
            )
        except httpx.TransportError as exc:
            self.health.connected = False
            raise SinkUnavailableError(f"{self.settings.url}: {exc!r}") from exc
        self.health.connected = True
        return response


def _database_names(response: httpx.Response) -> set[str]:
    try:
        series = response.json()["results"][0].get("series", [])
    except (ValueError, KeyError, IndexError):
        return set()
    return {str(values[0]) for item in series for values in item.get("values", [])}
