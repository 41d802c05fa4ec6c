"""InfluxDB 1.x sink: line protocol over `POST /write` (database, retention policy, user/password).

Points: measurement `production`, tags site/area/line/station/counter, integer fields `total`,
`delta`, `raw`, the update's timestamp in ns. The same update always makes the same point, so a
retried batch changes nothing.

How answers are treated:

| answer | error | the batch |
|---|---|---|
| 204 | - | delivered |
| network error, timeout, 5xx, 408, 429 | SinkUnavailableError | held and retried |
| 401, 403 (credentials), 404 (database missing, re-created) | SinkUnavailableError | held |
| any other 4xx (bad points, field type conflict) | BatchRejectedError | skipped, counted |

A batch refused with such a 4xx would be refused again on every retry and hold back everything
after it, until the outbox fills and the edge stops counting. It is skipped instead: the error
is logged with InfluxDB's message and counted in the sink's health. InfluxDB 1.x writes the
valid points of a batch and rejects only the bad ones ("partial write"), and the next point of
each counter carries its lifetime total again, so no unit goes missing from the totals.

The v2 API (`InfluxV2`) is not implemented yet: influxdb-client's async writer needs aiohttp,
which is not installed, and no v2 server runs here to test against.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import httpx
from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision

from edge.clock import to_ns
from edge.sinks.base import SinkHealth
from edge.sinks.errors import BatchRejectedError, SinkUnavailableError
from taktline.config.settings import InfluxV1
from taktline.records import CounterUpdate

log = logging.getLogger(__name__)

MEASUREMENT = "production"
_RETRY_4XX = frozenset({401, 403, 404, 408, 429})
_POINT: Any = Point  # influxdb-client's Point is not annotated


def line_protocol(update: CounterUpdate) -> str:
    """One update as a line of InfluxDB line protocol."""
    point = _POINT(MEASUREMENT)
    for key, value in update.counter.tags().items():
        point = point.tag(key, value)
    point = point.field("total", update.total).field("delta", update.delta)
    if update.raw is not None:
        point = point.field("raw", update.raw)
    text: str = point.time(to_ns(update.ts), WritePrecision.NS).to_line_protocol()
    return text


class InfluxV1Sink:
    """Writes updates to an InfluxDB 1.x database; creates the database when it is missing."""

    name = "influxdb"

    def __init__(
        self, settings: InfluxV1, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.batch_size = settings.batch_size
        self.health = SinkHealth(self.name)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._database_ready = False

    async def __aenter__(self) -> Self:
        auth = None
        if self.settings.username is not None:
            password = self.settings.password.reveal() if self.settings.password else ""
            auth = httpx.BasicAuth(self.settings.username, password)
        self._client = httpx.AsyncClient(
            base_url=self.settings.url,
            auth=auth,
            timeout=self.settings.timeout_s,
            transport=self._transport,
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
                log.warning("influxdb: cannot create database %r: %s", database, _message(created))
        self._database_ready = True
        self.health.connected = True

    async def send(self, updates: Sequence[CounterUpdate]) -> None:
        """Write the batch; raise SinkUnavailableError or BatchRejectedError (see module table)."""
        params = {"db": self.settings.database, "precision": "ns"}
        if self.settings.retention_policy:
            params["rp"] = self.settings.retention_policy
        body = "\n".join(line_protocol(update) for update in updates).encode()
        response = await self._request("POST", "/write", params=params, content=body)
        status = response.status_code
        if status == 204:
            return
        message = f"InfluxDB answered {status}: {_message(response)}"
        if status == 404:
            self._database_ready = False
        if status >= 500 or status in _RETRY_4XX:
            self.health.connected = False
            raise SinkUnavailableError(message)
        raise BatchRejectedError(message)

    async def _request(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        content: bytes | None = None,
    ) -> httpx.Response:
        if self._client is None:
            raise RuntimeError("the InfluxDB sink is not open")
        try:
            response = await self._client.request(method, path, params=params, content=content)
        except httpx.TransportError as exc:
            self.health.connected = False
            raise SinkUnavailableError(f"{self.settings.url}: {exc!r}") from exc
        self.health.connected = True
        return response


def _message(response: httpx.Response) -> str:
    """InfluxDB's error text from a JSON `{"error": ...}` body, else the raw body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    return str(error) if error else response.text.strip()[:500]


def _database_names(response: httpx.Response) -> set[str]:
    try:
        series = response.json()["results"][0].get("series", [])
    except (ValueError, KeyError, IndexError):
        return set()
    return {str(values[0]) for item in series for values in item.get("values", [])}
