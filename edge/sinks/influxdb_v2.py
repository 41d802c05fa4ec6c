"""InfluxDB v2 sink: line protocol over `POST /api/v2/write` (org, bucket, token).

Through influxdb-client's async client (aiohttp); the batching is ours (the outbox's batches),
so its batching write API is not used. The same endpoint serves InfluxDB 2.x, InfluxDB 3
(its v2-compatible write API) and VictoriaMetrics, which the tests write to.

Points: see edge.sinks.line_protocol. Answers: see edge.sinks.influx_answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import aiohttp
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from edge.sinks.base import SinkHealth
from edge.sinks.errors import SinkUnavailableError
from edge.sinks.influx_answers import RETRY_4XX, raise_for_answer
from edge.sinks.line_protocol import LineProtocol
from taktline.config.settings import InfluxV2
from taktline.records import CounterUpdate

_PRECISIONS = {
    "ns": WritePrecision.NS,
    "us": WritePrecision.US,
    "ms": WritePrecision.MS,
    "s": WritePrecision.S,
}


class InfluxV2Sink:
    """Writes updates to an InfluxDB v2 bucket."""

    name = "influxdb"

    def __init__(self, settings: InfluxV2) -> None:
        self.settings = settings
        self.batch_size = settings.batch_size
        self.flush_interval_s = settings.flush_interval_ms / 1000
        self.health = SinkHealth(self.name)
        self._lines = LineProtocol(settings.precision)
        self._client: Any = None  # InfluxDBClientAsync is not annotated
        self._write: Any = None

    async def __aenter__(self) -> Self:
        settings = self.settings
        self._client = InfluxDBClientAsync(
            url=settings.url,
            token=settings.token.reveal(),
            org=settings.org,
            timeout=int(settings.timeout_s * 1000),
            enable_gzip=settings.gzip,
        )
        self._write = self._client.write_api()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.close()

    async def ready(self) -> None:
        """Nothing to prepare: the bucket must exist (a 404 holds the batch and says so)."""

    async def send(self, updates: Sequence[CounterUpdate]) -> None:
        """Write the batch; raise SinkUnavailableError or BatchRejectedError."""
        if self._write is None:
            raise RuntimeError("the InfluxDB v2 sink is not open")
        body = self._lines.body(updates)
        try:
            await self._write.write(
                bucket=self.settings.bucket,
                org=self.settings.org,
                record=body,
                write_precision=_PRECISIONS[self.settings.precision],
            )
        except ApiException as exc:
            status = int(exc.status or 0)
            if status >= 500 or status in RETRY_4XX:
                self.health.connected = False
            headers: Any = exc.headers or {}
            raise_for_answer(status, _message(exc), headers.get("Retry-After"))
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self.health.connected = False
            raise SinkUnavailableError(f"{self.settings.url}: {exc!r}") from exc
        self.health.connected = True


def _message(exc: ApiException) -> str:
    """The server's message (a JSON body's `message`/`error`, else the body or the reason)."""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    if isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return str(exc.reason or "no message")
