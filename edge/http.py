"""The edge's HTTP endpoint: `GET /healthz` (JSON, 503 when unhealthy) and `GET /metrics`.

uvicorn serves a small Starlette app on a socket bound here (so port 0 yields a known port),
without taking over the process's signal handlers: the CLI owns those.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Generator
from types import TracebackType
from typing import Self

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge.health import HealthSnapshot
from taktline.model.connections import HttpListen


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handling."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def health_app(snapshot: Callable[[], HealthSnapshot], registry: CollectorRegistry) -> Starlette:
    """The ASGI app."""

    async def healthz(request: Request) -> Response:
        current = snapshot()
        return JSONResponse(current.to_json(), status_code=200 if current.ok else 503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[Route("/healthz", healthz, methods=["GET"]), Route("/metrics", metrics)]
    )


class HealthServer:
    """Serves `health_app` on `listen`; `url` is the bound address once entered."""

    def __init__(
        self,
        listen: HttpListen,
        snapshot: Callable[[], HealthSnapshot],
        registry: CollectorRegistry,
    ) -> None:
        self.listen = listen
        config = uvicorn.Config(
            health_app(snapshot, registry), log_level="warning", access_log=False, lifespan="off"
        )
        self._server = _EmbeddedServer(config)
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self.url = ""

    async def __aenter__(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.listen.host, self.listen.port))
        host, port = sock.getsockname()[:2]
        self._socket = sock
        self.url = f"http://{host}:{port}"
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="edge http")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start
                raise RuntimeError("the edge HTTP server stopped while starting")
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        if self._socket is not None:
            self._socket.close()
