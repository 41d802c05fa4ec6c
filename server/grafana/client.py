"""grafana-client's async API built from `GrafanaSettings`, with its errors translated.

This is the one place that reads the Grafana token. Errors at the boundary become:

    GrafanaError                    a call failed: timed out, or an error answer;
     ├── GrafanaAuthError           Grafana refused the token (401)
     └── GrafanaUnreachableError    no connection (refused, unknown host, TLS)

Their messages name the call and Grafana's own message, never the token.
"""

from __future__ import annotations

from collections.abc import Awaitable
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import niquests
from grafana_client.api import AsyncGrafanaApi
from grafana_client.client import GrafanaException

from taktline.config.settings import GrafanaSettings
from taktline.model.secrets import SecretError

Json = dict[str, Any]


class GrafanaError(RuntimeError):
    """A Grafana call failed; `status` is Grafana's HTTP status when it answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GrafanaAuthError(GrafanaError):
    """Grafana refused the token (401): every further call would fail the same way."""


class GrafanaUnreachableError(GrafanaError):
    """No connection to Grafana (refused, unknown host, TLS failure)."""


def grafana_api(settings: GrafanaSettings) -> AsyncGrafanaApi:
    """grafana-client's async API for `settings`: bearer token, timeout, TLS verification.

    Raises GrafanaError when the token cannot be read. Close it with `close_api` (or use
    `Grafana`, which does). grafana-client sends a str `auth` as `Authorization: Bearer`."""
    try:
        token = settings.token.reveal()
    except SecretError as exc:
        raise GrafanaError(f"Grafana token: {exc}") from None
    parts = urlsplit(settings.url)
    host = parts.hostname or ""
    prefix = parts.path.strip("/")
    verify: bool | str = settings.tls_verify
    if settings.tls_ca_file is not None:
        verify = str(settings.tls_ca_file)
    return AsyncGrafanaApi(
        auth=token,
        host=f"[{host}]" if ":" in host else host,
        port=parts.port,
        url_path_prefix=f"{prefix}/" if prefix else "",
        protocol=parts.scheme,
        verify=verify,
        timeout=settings.timeout_s,
    )


async def close_api(api: AsyncGrafanaApi) -> None:
    """Close the API's HTTP session (its connections)."""
    session: Any = api.client.s  # niquests.AsyncSession; grafana-client types it as Session
    await session.close()


async def call(what: str, request: Awaitable[Any]) -> Any:
    """Await one grafana-client call; raise GrafanaError naming `what` when it fails."""
    try:
        return await request
    except GrafanaException as exc:
        status = exc.status_code or None
        if status is None:
            raise GrafanaError(f"{what}: {_root(exc)}") from None
        error = GrafanaAuthError if status == 401 else GrafanaError
        raise error(f"{what}: Grafana answered {status} {_message(exc)}", status) from None
    except niquests.exceptions.ConnectionError as exc:
        raise GrafanaUnreachableError(f"{what}: cannot reach Grafana: {_root(exc)}") from None
    except niquests.exceptions.RequestException as exc:
        raise GrafanaError(f"{what}: {_root(exc)}") from None


def _root(exc: BaseException) -> str:
    """The innermost cause's text ("[Errno 111] Connect call failed ..."), not the wrappers'."""
    while (inner := exc.__cause__ or exc.__context__) is not None:
        exc = inner
    return str(exc)


def _message(exc: GrafanaException) -> str:
    """Grafana's own message (and status word, such as version-mismatch) from an error answer."""
    body = exc.response
    if not isinstance(body, dict):
        return str(body or exc.message).strip()[:300]
    message = str(body.get("message") or exc.message)
    return f"{message} ({body['status']})" if isinstance(body.get("status"), str) else message


class Grafana:
    """The calls `taktline grafana push` makes, typed: `async with Grafana(settings) as g: ...`.

    Getters return None when Grafana answers 404; every method raises GrafanaError."""

    def __init__(self, settings: GrafanaSettings) -> None:
        self.settings = settings
        self.api = grafana_api(settings)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await close_api(self.api)

    async def get_datasource(self, uid: str) -> Json | None:
        return await self._get(f"/datasources/uid/{uid}")

    async def create_datasource(self, body: Json) -> Json:
        return await self._send("POST", "/datasources", body)

    async def update_datasource(self, uid: str, body: Json) -> Json:
        return await self._send("PUT", f"/datasources/uid/{uid}", body)

    async def get_folder(self, uid: str) -> Json | None:
        return await self._get(f"/folders/{uid}")

    async def create_folder(self, uid: str, title: str) -> Json:
        return await self._send("POST", "/folders", {"uid": uid, "title": title})

    async def update_folder(self, uid: str, title: str, version: int) -> Json:
        return await self._send("PUT", f"/folders/{uid}", {"title": title, "version": version})

    async def get_dashboard(self, uid: str) -> Json | None:
        """`{"dashboard": ..., "meta": {"folderUid": ..., "version": ...}}` or None."""
        return await self._get(f"/dashboards/uid/{uid}")

    async def save_dashboard(
        self, dashboard: Json, folder_uid: str, message: str, *, overwrite: bool = False
    ) -> Json:
        """POST /api/dashboards/db. Without overwrite, Grafana wants the stored `version` in
        `dashboard` and refuses (412) when someone saved it since."""
        body = {
            "dashboard": dashboard,
            "folderUid": folder_uid,
            "message": message,
            "overwrite": overwrite,
        }
        return await self._send("POST", "/dashboards/db", body)

    async def _get(self, path: str) -> Json | None:
        what = f"GET /api{path}"
        try:
            answer = await call(what, self.api.client.GET(path))
        except GrafanaError as exc:
            if exc.status == 404:
                return None
            raise
        return _object(what, answer)

    async def _send(self, method: str, path: str, body: Json) -> Json:
        what = f"{method} /api{path}"
        request = getattr(self.api.client, method)
        return _object(what, await call(what, request(path, json=body)))


def _object(what: str, answer: Any) -> Json:
    if not isinstance(answer, dict):
        raise GrafanaError(f"{what}: Grafana answered something other than a JSON object")
    return answer
