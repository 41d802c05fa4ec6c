"""The server's InfluxDB writer: lines of line protocol over HTTP (v1 `/write` or v2
`/api/v2/write`), one request per call, in ns precision.

Used for milestone crossings (`server.milestone_influx`) and edge health samples
(`server.edge_health_influx`); each caller decides what a failure means (retry or drop).
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Self

import httpx

from taktline.config.settings import InfluxV1, InfluxV2
from taktline.influxwire import error_text


class InfluxWriteError(RuntimeError):
    """InfluxDB did not take the points (unreachable, or an error answer)."""


class InfluxHttpWriter:
    """`async with InfluxHttpWriter(settings) as influx: await influx.write(lines)`."""

    def __init__(
        self, settings: InfluxV1 | InfluxV2, *, transport: httpx.AsyncBaseTransport | None = None
    ):
        self.settings = settings
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Self:
        settings = self.settings
        auth: httpx.Auth | None = None
        headers: dict[str, str] = {}
        if isinstance(settings, InfluxV1) and settings.username is not None:
            password = settings.password.reveal() if settings.password else ""
            auth = httpx.BasicAuth(settings.username, password)
        if isinstance(settings, InfluxV2):
            headers["Authorization"] = f"Token {settings.token.reveal()}"
        self._client = httpx.AsyncClient(
            base_url=settings.url,
            auth=auth,
            headers=headers,
            timeout=settings.timeout_s,
            transport=self._transport,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def write(self, lines: Iterable[str]) -> None:
        """Write the lines in one request; raises InfluxWriteError. A v1 database that is
        missing is created (then written to)."""
        body = "\n".join(lines).encode()
        response = await self._post(body)
        if response.status_code == 404 and isinstance(self.settings, InfluxV1):
            await self._create_database(self.settings)
            response = await self._post(body)
        if not response.is_success:
            raise InfluxWriteError(
                f"{self.settings.url}: {response.status_code} {error_text(response, 300)}"
            )

    async def _post(self, body: bytes) -> httpx.Response:
        settings = self.settings
        if isinstance(settings, InfluxV1):
            path = "/write"
            params = {"db": settings.database, "precision": "ns"}
            if settings.retention_policy:
                params["rp"] = settings.retention_policy
        else:
            path = "/api/v2/write"
            params = {"org": settings.org, "bucket": settings.bucket, "precision": "ns"}
        return await self._request(path, params, body)

    async def _create_database(self, settings: InfluxV1) -> None:
        quoted = settings.database.replace('"', '\\"')
        await self._request("/query", {"q": f'CREATE DATABASE "{quoted}"'}, None)

    async def _request(
        self, path: str, params: dict[str, str], body: bytes | None
    ) -> httpx.Response:
        if self._client is None:
            raise RuntimeError("InfluxHttpWriter is not open")
        try:
            return await self._client.post(path, params=params, content=body)
        except httpx.TransportError as exc:
            raise InfluxWriteError(f"{self.settings.url}: {exc!r}") from None
