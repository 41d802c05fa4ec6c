"""The edge agent: collectors -> counters -> outbox (group commit) -> sinks, plus health.

Data path and overflow policy: each collector's readings go into one bounded intake
(`queue_size`, policy BLOCK: a full intake stops pulling from the collectors). The committer takes
everything that arrives within `commit_interval_ms` of the first reading as one list, applies the
counter semantics (`CounterBook`, edge.counters) and stores the updates with the states of the
counters they changed in one outbox transaction. When the outbox is full it keeps the batch,
raises the `outbox full` alarm (health, metrics, one log line) and retries until a sink made
room; meanwhile the intake fills and the collectors are held back. Nothing is dropped. Each
sink delivers from its own outbox cursor in its own task.

Health: every `health_every_s` the agent publishes its health (sources, outbox, sinks) retained
on the live bus (`taktline/v1/_edge/{edge_id}/health`, edge.health.report_health), through the
live-bus sink's connection.

Acknowledgement: after the commit that holds a batch, the receipts of its readings (mapped or
not, counted or not) go back, in order, to the collector that made them when it is
`Acknowledging` (an MQTT QoS 1 message is acknowledged to the broker only then).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from collectors.base import Acknowledging, Collector
from collectors.registry import create_collector
from edge.book import CounterBook
from edge.clock import now_ns
from edge.counters import (
    DEFAULT_RULES,
    Decision,
    TotalRules,
)
from edge.health import HEALTH_EVERY_S, HealthSnapshot, SinkStatus, problems_of, report_health
from edge.http import HealthServer
from edge.intake import Intake
from edge.mapping import SourceMap
from edge.metrics import edge_registry
from edge.outbox import Outbox, OutboxFullError, UpdateRow
from edge.sinks.base import Sink
from edge.sinks.forwarder import DEFAULT_BACKOFF, Backoff, forward
from edge.sinks.livebus import LiveBusSink
from taktline.config.loader import EdgeConfig
from taktline.config.settings import InfluxV2
from taktline.model.paths import CounterPath
from taktline.model.sources import Source
from taktline.records import Quality, Reading

log = logging.getLogger(__name__)

OUTBOX_FILE = "outbox.sqlite"
HISTORY_WITHOUT_INFLUXDB = 100_000
"""Delivered updates the outbox keeps when no InfluxDB is configured (the edge's history)."""
_LOGGED = frozenset({Decision.RESET, Decision.ROLLOVER, Decision.GLITCH})
_GOOD = Quality.GOOD.value
_FULL_RETRY_S = 0.2
_FLUSH_TIMEOUT_S = 10.0
_MAX_BATCH = 10_000
"""Most readings in one commit; a batch also stays below a tenth of the outbox, so it always
fits once the sinks made room."""

GC_YOUNG_THRESHOLD = 50_000
"""Net allocations of container objects between two young collections (Python's default: 700).
At 10,000 updates/s the default ran over a hundred collections a second, each walking the
batches then in flight: 9% of the edge's CPU. Nearly everything is freed by reference counting;
the rare cycles (asyncio's exceptions, futures) are still collected, just later."""

CollectorFactory = Callable[[Source, Path], Collector]


class EdgeAgent:
    """One edge: `async with EdgeAgent(config) as agent: await agent.run()`."""

    def __init__(
        self,
        config: EdgeConfig,
        *,
        collector_factory: CollectorFactory = create_collector,
        backoff: Backoff = DEFAULT_BACKOFF,
        rules: TotalRules = DEFAULT_RULES,
        queue_size: int = 10_000,
        expire_every_s: float = 0.5,
        health_every_s: float = HEALTH_EVERY_S,
    ) -> None:
        self.settings = config.settings
        self.map = SourceMap(config.plant, config.settings.sources)
        self._collector_factory = collector_factory
        self._backoff = backoff
        self._rules = rules
        self._expire_every_s = expire_every_s
        self._health_every_s = health_every_s
        self._intake = Intake(queue_size)
        self._in_flight = 0
        self._collectors: list[Collector] = []
        self._acknowledging: dict[str, Acknowledging] = {}
        self._sinks: list[Sink] = []
        self._book: CounterBook | None = None
        self._outbox_full = False
        self._tasks: dict[str, list[asyncio.Task[None]]] = {}
        self._stopping = False
        self._stack = contextlib.AsyncExitStack()
        self.outbox: Outbox | None = None
        self.registry = edge_registry(self.health)
        self.http: HealthServer | None = None

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def run(self) -> None:
        """Run until cancelled; raises when a part of the agent fails.

        Cancelling it leaves the agent's tasks running, so leaving the context still commits
        the readings in flight before it stops them in order.
        """
        tasks = [task for group in self._tasks.values() for task in group]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()

    async def wait_synced(self, timeout: float) -> None:  # noqa: ASYNC109 (the public contract)
        """Wait until every queued reading is committed and every sink delivered the outbox."""
        async with asyncio.timeout(timeout):
            while not self._synced():  # noqa: ASYNC110 (state of several tasks; a test aid)
                await asyncio.sleep(0.02)

    def total(self, path: CounterPath) -> int | None:
        """A counter's lifetime total (None before its first good reading)."""
        return self._book.total(path) if self._book is not None else None

    def health(self) -> HealthSnapshot:
        """A snapshot for /healthz and /metrics."""
        now = now_ns()
        outbox, book = self.outbox, self._book
        sinks = [
            SinkStatus(
                sink.health,
                outbox.depth(sink.name) if outbox else 0,
                # wall-clock ages: a clock stepped back would make them negative
                max(0.0, (now - sink.health.oldest_pending_ns) / 1e9)
                if sink.health.oldest_pending_ns is not None
                else None,
            )
            for sink in self._sinks
        ]
        sources = [collector.health for collector in self._collectors]
        return HealthSnapshot(
            edge_id=self.settings.edge_id,
            sources=sources,
            sinks=sinks,
            outbox_undelivered=outbox.undelivered() if outbox else 0,
            outbox_max_records=self.settings.outbox.max_records,
            outbox_full=self._outbox_full,
            outbox_dropped=outbox.dropped if outbox else 0,
            decisions=book.decisions() if book else {},
            totals=book.totals() if book else {},
            unmapped_readings=sum(book.unmapped.values()) if book else 0,
            problems=problems_of(sources, self._outbox_full),
        )

    async def _start(self) -> None:
        settings = self.settings
        self._sinks = self._make_sinks()
        retain = 0 if settings.influxdb is not None else HISTORY_WITHOUT_INFLUXDB
        outbox = Outbox(
            settings.state_dir / OUTBOX_FILE,
            [sink.name for sink in self._sinks],
            settings.outbox.max_records,
            retain_delivered=retain,
            when_full=settings.outbox.when_full,
        )
        self.outbox = await self._stack.enter_async_context(outbox)
        self._book = CounterBook(self.map.addresses(), await outbox.states(), self._rules)
        self.http = await self._stack.enter_async_context(
            HealthServer(settings.http, self.health, self.registry)
        )
        for sink in self._sinks:
            await self._stack.enter_async_context(sink)
        self._stack.push_async_callback(self._cancel_tasks, "sinks")
        for sink in self._sinks:
            self._spawn(forward(sink, outbox, self._backoff), f"sink:{sink.name}", "sinks")
        live_bus = next(sink for sink in self._sinks if isinstance(sink, LiveBusSink))
        self._stack.push_async_callback(self._cancel_tasks, "health")
        self._spawn(
            report_health(self.health, live_bus.publish_health, self._health_every_s),
            "health",
            "health",
        )
        self._stack.push_async_callback(self._flush)
        self._spawn(self._commit_loop(), "committer", "committer")
        for source in self.map.sources:
            collector = await self._stack.enter_async_context(
                self._collector_factory(source, self.settings.state_dir)
            )
            self._collectors.append(collector)
            if isinstance(collector, Acknowledging):
                self._acknowledging[collector.source_id] = collector
        self._stack.push_async_callback(self._cancel_tasks, "readers")
        for collector in self._collectors:
            self._spawn(self._read(collector), f"reader:{collector.source_id}", "readers")
        log.info(
            "edge %s: %d sources, %d counters, sinks %s, outbox %s, http %s",
            settings.edge_id,
            len(self._collectors),
            len(self._book),
            [sink.name for sink in self._sinks],
            outbox.path,
            self.http.url,
        )

    def _make_sinks(self) -> list[Sink]:
        settings = self.settings
        sinks: list[Sink] = [
            LiveBusSink(
                settings.live_bus,
                settings.edge_id,
                self.map.lines,
                self._backoff,
                max_rate_hz=settings.live_bus_max_rate_hz,
            )
        ]
        influxdb = settings.influxdb
        if isinstance(influxdb, InfluxV2):
            from edge.sinks.influxdb_v2 import InfluxV2Sink  # aiohttp: only when configured

            sinks.append(InfluxV2Sink(influxdb))
        elif influxdb is not None:
            from edge.sinks.influxdb import InfluxV1Sink  # httpx: only when configured

            sinks.append(InfluxV1Sink(influxdb))
        return sinks

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str, group: str) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(_log_failure)
        self._tasks.setdefault(group, []).append(task)

    async def _cancel_tasks(self, group: str) -> None:
        tasks = self._tasks.pop(group, [])
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _synced(self) -> bool:
        outbox = self.outbox
        if outbox is None or self._intake or self._in_flight:
            return False
        return all(outbox.depth(sink.name) == 0 for sink in self._sinks)

    async def _read(self, collector: Collector) -> None:
        intake = self._intake
        health = collector.health
        async for reading in collector.readings():
            health.readings += 1
            if not intake.add(reading):
                await intake.put(reading)  # BLOCK when full: back-pressure on the collector

    async def _commit_loop(self) -> None:
        assert self._book is not None
        book, intake = self._book, self._intake
        most = max(1, min(_MAX_BATCH, self.settings.outbox.max_records // 10, intake.maxsize))
        while not (self._stopping and not intake):
            batch = await self._next_batch(most)
            self._in_flight = len(batch)
            rows, states = book.apply(batch, now_ns())
            if rows or states:
                await self._append(rows, states)
            self._acknowledge(batch)
            self._in_flight = 0

    async def _next_batch(self, most: int) -> list[Reading]:
        """Everything that arrives within commit_interval_ms of the first reading (at most
        `most` readings); while stopping, what waits."""
        intake = self._intake
        if self._stopping:
            return intake.take(most)
        try:
            async with asyncio.timeout(self._expire_every_s):
                await intake.wait_for(1)
        except TimeoutError:
            return []  # nothing came: still commit what expiry confirms
        deadline = (
            asyncio.get_running_loop().time() + self.settings.outbox.commit_interval_ms / 1000
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await intake.wait_for(most)
        return intake.take(most)

    def _acknowledge(self, readings: list[Reading]) -> None:
        """Hand the receipts of committed readings back to their collectors, in order."""
        if not self._acknowledging:
            return
        receipts: dict[str, list[int]] = {}
        for reading in readings:
            if reading.receipt is not None:
                receipts.setdefault(reading.source_id, []).append(reading.receipt)
        for source_id, items in receipts.items():
            collector = self._acknowledging.get(source_id)
            if collector is not None:
                collector.acknowledge(items)

    async def _append(self, rows: list[UpdateRow], states: dict[str, str]) -> None:
        assert self.outbox is not None
        while True:
            try:
                await self.outbox.append_rows(rows, states)
                break
            except OutboxFullError as exc:
                if not self._outbox_full:
                    log.error("outbox full: %s; not taking readings until sinks catch up", exc)
                    self._outbox_full = True
                await asyncio.sleep(_FULL_RETRY_S)
        if self._outbox_full:
            log.info("outbox has room again; taking readings")
            self._outbox_full = False

    async def _flush(self) -> None:
        """On stop: let the committer store what it and the intake still hold (bounded wait)."""
        self._stopping = True
        committer = self._tasks.get("committer", [])
        if committer:
            done, _ = await asyncio.wait(committer, timeout=_FLUSH_TIMEOUT_S)
            if not done:
                log.warning("edge: readings not committed within %ss are dropped", _FLUSH_TIMEOUT_S)
        await self._cancel_tasks("committer")


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("edge task %s failed: %r", task.get_name(), error)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def run_edge(config: EdgeConfig) -> None:
    """Run one edge agent until SIGINT or SIGTERM, or until cancelled: the main of
    `taktline edge`.

    The first signal asks for a clean stop with a flag, not a cancellation: a cancellation can
    be lost (a library that turns it into a timeout of its own, a signal during the start), a
    flag cannot, so a signal during the start stops the edge once it has started. A second
    signal cancels the stop in progress.

    What the start made (modules, plant model, counters, sessions) lives as long as the process,
    so it is moved out of the garbage collector's sight (`gc.freeze`): every full collection
    would otherwise walk all of it again while updates stream through. Young collections run
    every GC_YOUNG_THRESHOLD allocations instead of Python's 700 (see there).
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main = asyncio.current_task()

    def on_signal() -> None:
        if stop.is_set() and main is not None:
            main.cancel()
        stop.set()

    for number in STOP_SIGNALS:
        loop.add_signal_handler(number, on_signal)
    try:
        async with EdgeAgent(config) as agent:
            gc.freeze()
            gc.set_threshold(GC_YOUNG_THRESHOLD)
            await _until_stopped(agent.run(), stop)
    finally:
        for number in STOP_SIGNALS:
            loop.remove_signal_handler(number)


async def _until_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> None:
    """Run `work` until it ends (raising its error) or `stop` is set."""
    running = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait([running, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        running.cancel()
        stopping.cancel()
        await asyncio.wait([running, stopping])
    if running in done:
        running.result()
