"""The server process: live-bus listener, event hub and HTTP app (FastAPI on uvicorn)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client.registry import Collector

from server import api, errors, events, metrics, pages, writes
from server.alerts import ack_page
from server.alerts import routes as alert_routes
from server.alerts.ack_tokens import AckTokens, SigningKeyError, load_signing_key
from server.alerts.alert_store import AlertStore
from server.alerts.annotations import AlertAnnotator
from server.alerts.lease import lease_for
from server.alerts.lifecycle import AlertEngine
from server.alerts.rules import AlertEvaluator
from server.alerts.signals import signals_from_board
from server.auth import BearerGuard, TokenError, read_token
from server.crossings import Crossing, CrossingDetector
from server.database import StoreError
from server.edge_health import EdgeHealthBook
from server.edge_health_influx import EdgeHealthInflux
from server.events import EventHub
from server.flusher import Persister
from server.livebus import LiveBusListener
from server.metrics import AlertsCollector, OutputsCollector
from server.milestone_outputs import MilestoneOutputs
from server.state import Clock, LineBoard, utc_now
from server.store import StateStore
from taktline.config import ServerConfig
from taktline.config.settings import ServerSettings
from taktline.model.secrets import SecretError

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 3
EVALUATE_EVERY_S = 1.0
"""How often the alert rules are evaluated (and escalations and reminders sent when due)."""
MAX_WAITING_CROSSINGS = 10_000
"""Milestone crossings waiting for the next evaluation; when full the oldest are dropped."""


class ServerStartError(RuntimeError):
    """The server could not start: its HTTP address is taken or not allowed, its state store
    cannot be opened, or its api_token or ack signing key cannot be read."""


def create_app(
    board: LineBoard,
    listener: LiveBusListener,
    hub: EventHub,
    persister: Persister,
    guard: BearerGuard,
    collectors: Sequence[Collector] = (),
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """The HTTP app over running parts; `collectors` add to `GET /metrics`, `routers` (the
    alerts') to the routes."""
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
    for extra in routers:
        app.include_router(extra)
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    return app


class Server:
    """The whole server in this process: `async with Server(config) as server: server.url`.

    Port 0 in `settings.http` picks a free port; `url` names the bound one. Shift counts are
    kept in `settings.state_dir/server.sqlite` and restored before the live bus is read, as
    are the milestone totals and crossings (server.crossings, server.milestone_outputs) and the
    open alerts (server.alerts.lifecycle). The alert rules are evaluated every
    `evaluate_every_s` on the board's clock.
    """

    def __init__(
        self,
        config: ServerConfig,
        *,
        clock: Clock = utc_now,
        evaluate_every_s: float = EVALUATE_EVERY_S,
    ):
        settings = config.settings
        self.config = config
        self.evaluate_every_s = evaluate_every_s
        self.evaluations = 0
        """Evaluations of the alert rules done (each followed by the escalation tick)."""
        self.evaluation_errors = 0
        """Evaluations that raised (logged once per outage; the next period tries again)."""
        delivery = settings.alerts.delivery
        try:
            guard = BearerGuard(read_token(settings.api_token))
            self.ack_tokens = AckTokens(
                load_signing_key(delivery.ack.signing_key, settings.state_dir),
                clock=lambda: clock().timestamp(),
            )
        except (TokenError, SigningKeyError) as exc:
            raise ServerStartError(str(exc)) from None
        self.board = LineBoard(config.plant, stale_after_s=settings.stale_after_s, clock=clock)
        self.hub = EventHub(self.board)
        self.listener = LiveBusListener(settings.live_bus, self._on_message)
        try:
            self.store = StateStore(_store_location(settings))
        except (StoreError, SecretError) as exc:
            raise ServerStartError(str(exc)) from None
        try:
            self.alert_store = AlertStore(self.store)
        except StoreError as exc:
            self.store.close()
            raise ServerStartError(str(exc)) from None
        self.lease = lease_for(self.store.database)
        self.persister = Persister(self.board, self.store, on_change=self.hub.publish)
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
        self.annotator = (
            AlertAnnotator(self.alert_store, settings.grafana, config.plant)
            if settings.grafana is not None
            else None
        )
        self.evaluator = AlertEvaluator(config.plant)
        self.alerts = AlertEngine(
            config.plant,
            self.alert_store,
            clock=self.board.now,
            policy=delivery.retry,
            smtp=delivery.smtp,
            tokens=self.ack_tokens,
            public_url=delivery.public_url,
            repeat_minutes=settings.alerts.repeat_minutes,
            on_change=self._alerts_changed,
            on_resolved=self.annotator.wake if self.annotator is not None else None,
        )
        self._crossings: collections.deque[Crossing] = collections.deque(
            maxlen=MAX_WAITING_CROSSINGS
        )
        routers = [
            alert_routes.router(self.alerts, guard, self.board.now),
            ack_page.router(self.alerts, self.ack_tokens, delivery.ack.lifetime_s, self.board.now),
        ]
        self.app = create_app(
            self.board,
            self.listener,
            self.hub,
            self.persister,
            guard,
            collectors=[outputs, AlertsCollector(self.alerts, self._evaluation_counts)],
            routers=routers,
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
        made = self.crossings.handle(topic, payload)
        if made:
            self._crossings.extend(made)
            self.milestones.wake()

    def _alerts_changed(self, lines: set[str]) -> None:
        """Open alerts changed: the screens of their lines show it."""
        self.hub.publish(self.board.set_alerts(self.alerts.line_alerts()) | lines)

    def _evaluation_counts(self) -> tuple[int, int]:
        return self.evaluations, self.evaluation_errors

    async def _evaluate(self) -> None:
        """Every `evaluate_every_s`: when this replica runs the alerts, the rules over the board,
        edge health and new crossings, their transitions to the alert engine, then escalations
        and reminders that are due; else the alerts as stored."""
        failing = False
        while True:
            await asyncio.sleep(self.evaluate_every_s)
            crossings = list(self._crossings)
            self._crossings.clear()
            try:
                if await self._lead_or_follow():
                    signals = signals_from_board(self.board, self.edge_health.latest, crossings)
                    await self.alerts.handle(self.evaluator.evaluate(self.board.now(), signals))
                    await self.alerts.tick()
            except Exception:  # a rule's bug must not take the screens down: logged, counted
                self.evaluation_errors += 1
                if not failing:
                    log.exception("alerts: evaluating the rules failed; retrying every period")
                    failing = True
                continue
            if failing:
                log.info("alerts: evaluating the rules works again")
                failing = False
            self.evaluations += 1

    async def _lead_or_follow(self) -> bool:
        """Run the alerts when this replica holds the lease (taking them over from the store
        when it just got it, as after a restart); else show them as stored. True: running.
        Raises StoreError."""
        if await self.lease.held():
            if not self.alerts.leading:
                await self.alerts.take_over()
                self.evaluator = AlertEvaluator(self.config.plant)
                self.evaluator.restore(self.alerts.firing())
            return True
        if self.alerts.leading:
            await self.alerts.stand_by()
        await self.alerts.follow()
        return False

    async def __aenter__(self) -> Server:
        listen = self.config.settings.http
        try:
            self.board.restore(await asyncio.to_thread(self.store.current))
            await self.milestones.restore()
            await self._lead_or_follow()
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
            asyncio.create_task(self._evaluate(), name="server-alerts"),
        ]
        if self.annotator is not None:
            self._tasks.append(asyncio.create_task(self.annotator.run(), name="server-annotate"))
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
        await self.alerts.aclose()
        await self.lease.release()
        try:
            await self.persister.flush()
        except StoreError:
            log.error("state store: the last shift counts could not be written at shutdown")
        try:
            await self.milestones.flush()
        except StoreError:
            log.error("state store: the last milestone totals could not be written at shutdown")
        await asyncio.to_thread(self.store.close)


def _store_location(settings: ServerSettings) -> Path | str:
    """The shared PostgreSQL store's URL when configured, else the SQLite store's folder.
    Raises SecretError."""
    return settings.state_dir if settings.state_store is None else settings.state_store.reveal()


async def run_server(config: ServerConfig) -> None:
    """Run the server until cancelled (or stopped by a signal); logs every line screen's URL."""
    async with Server(config) as server:
        log.info("taktline server on %s (API docs: %s/docs)", server.url, server.url)
        for line_id in server.board.line_ids():
            log.info("line screen %s: %s/lines/%s", line_id, server.url, line_id)
        await server.wait()
