"""The server process: live-bus listener, event hub and HTTP app (FastAPI on uvicorn)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Sequence
from types import TracebackType

import uvicorn
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client.registry import Collector

from server import api, errors, events, metrics, pages, writes
from server.auth import BearerGuard, TokenError, read_token
from server.crossings import CrossingDetector
from server.edge_health import EdgeHealthBook
from server.edge_health_influx import EdgeHealthInflux
from server.events import EventHub
from server.flusher import Persister
from server.livebus import LiveBusListener
from server.metrics import OutputsCollector
from server.milestone_outputs import MilestoneOutputs
from server.state import Clock, LineBoard, utc_now
from server.store import StateStore, StoreError
from taktline.config import ServerConfig

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 3


class ServerStartError(RuntimeError):
    """The server could not start: its HTTP address is taken or not allowed, its state store
    cannot be opened, or its api_token cannot be read."""


def create_app(
    board: LineBoard,
    listener: LiveBusListener,
    hub: EventHub,
    persister: Persister,
    guard: BearerGuard,
    collectors: Sequence[Collector] = (),
) -> FastAPI:
    """The HTTP app over running parts; `collectors` add to `GET /metrics`."""
    app = FastAPI(
        title="taktline server",
        summary="Live line state from the live bus: line screens, JSON API, events, metrics.",
        version="0.1.0",
    )
    errors.install(app)
    app.include_router(api.router(board, persister))
    app.include_router(writes.router(board, persister, guard, hub.publish))
    app.include_router(events.router(hub))
    app.include_router(pages.router(board))
    app.include_router(metrics.router(board, listener, hub, collectors))
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    return app


class Server:
    """The whole server in this process: `async with Server(config) as server: server.url`.

    Port 0 in `settings.http` picks a free port; `url` names the bound one. Shift counts are
    kept in `settings.state_dir/server.sqlite` and restored before the live bus is read, as
    are the milestone totals and crossings (server.crossings, server.milestone_outputs).
    """

    def __init__(self, config: ServerConfig, *, clock: Clock = utc_now):
        settings = config.settings
        self.config = config
        try:
            guard = BearerGuard(read_token(settings.api_token))
        except TokenError as exc:
            raise ServerStartError(str(exc)) from None
        self.board = LineBoard(config.plant, stale_after_s=settings.stale_after_s, clock=clock)
        self.hub = EventHub(self.board)
        self.listener = LiveBusListener(settings.live_bus, self._on_message)
        try:
            self.store = StateStore(settings.state_dir)
        except StoreError as exc:
            raise ServerStartError(str(exc)) from None
        self.persister = Persister(self.board, self.store)
        self.crossings = CrossingDetector(
            config.plant.milestones, (path for path, _counter in config.plant.counters())
        )
        self.milestones = MilestoneOutputs(
            self.crossings,
            self.store,
            settings.live_bus,
            settings.influxdb,
            grafana=settings.grafana,
            plant=config.plant,
        )
        self.edge_health_influx = (
            EdgeHealthInflux(settings.influxdb) if settings.influxdb is not None else None
        )
        self.edge_health = EdgeHealthBook(
            self.edge_health_influx.offer if self.edge_health_influx is not None else None
        )
        outputs = OutputsCollector(self.milestones, self.edge_health, self.edge_health_influx)
        self.app = create_app(
            self.board, self.listener, self.hub, self.persister, guard, collectors=[outputs]
        )
        self._uvicorn = uvicorn.Server(
            uvicorn.Config(
                self.app,
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
            )
        )
        self._socket: socket.socket | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.url = ""

    def _on_message(self, topic: str, payload: bytes) -> None:
        if self.edge_health.handle(topic, payload):
            return
        self.hub.publish(self.board.handle(topic, payload))
        if self.crossings.handle(topic, payload):
            self.milestones.wake()

    async def __aenter__(self) -> Server:
        listen = self.config.settings.http
        try:
            self.board.restore(await asyncio.to_thread(self.store.current))
            await self.milestones.restore()
            self._socket = socket.create_server((listen.host, listen.port))
        except StoreError as exc:
            self.store.close()
            raise ServerStartError(str(exc)) from None
        except OSError as exc:
            self.store.close()
            raise ServerStartError(
                f"cannot listen on {listen.host}:{listen.port}: {exc.strerror}"
            ) from None
        host, port = self._socket.getsockname()[:2]
        shown = socket.gethostname() if host in ("0.0.0.0", "::") else host
        self.url = f"http://{shown}:{port}"
        self._tasks = [
            asyncio.create_task(self.listener.run(), name="server-livebus"),
            asyncio.create_task(self.hub.run_ticker(), name="server-events"),
            asyncio.create_task(self._uvicorn.serve([self._socket]), name="server-http"),
            asyncio.create_task(self.persister.run(), name="server-persist"),
            asyncio.create_task(self.milestones.run(), name="server-milestones"),
        ]
        if self.edge_health_influx is not None:
            writer = asyncio.create_task(self.edge_health_influx.run(), name="server-edge-health")
            self._tasks.append(writer)
        while not self._uvicorn.started:
            if self._tasks[2].done():
                await self._stop()
                raise ServerStartError(f"the HTTP server did not start on {host}:{port}")
            await asyncio.sleep(0.02)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stop()

    async def wait(self) -> None:
        """Until a part stops (the HTTP server exits on SIGINT/SIGTERM); raises its error."""
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()

    async def _stop(self) -> None:
        self.hub.close()
        self._uvicorn.should_exit = True
        http = self._tasks[2] if self._tasks else None
        if http is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await http
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._socket is not None:
            self._socket.close()
        try:
            await self.persister.flush()
        except StoreError:
            log.error("state store: the last shift counts could not be written at shutdown")
        try:
            await self.milestones.flush()
        except StoreError:
            log.error("state store: the last milestone totals could not be written at shutdown")
        await asyncio.to_thread(self.store.close)


async def run_server(config: ServerConfig) -> None:
    """Run the server until cancelled (or stopped by a signal); logs every line screen's URL."""
    async with Server(config) as server:
        log.info("taktline server on %s (API docs: %s/docs)", server.url, server.url)
        for line_id in server.board.line_ids():
            log.info("line screen %s: %s/lines/%s", line_id, server.url, line_id)
        await server.wait()
