"""The plant simulator: production on every line, served over OPC UA and published over MQTT."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Coroutine, Iterable
from types import TracebackType
from typing import Any, Self

from taktline.model.paths import CounterPath
from taktline.model.plant import Plant
from taktline.model.sources import MqttSource, OpcUaSource
from taktline.sim.errors import SimulatorError
from taktline.sim.mqtt import MqttPublisher, TopicFeed
from taktline.sim.opcua import NodeFeed, OpcUaEndpoint
from taktline.sim.payload import build_payload
from taktline.sim.production import Change, Production, SimStats, StationKey, line_rate_per_min

log = logging.getLogger(__name__)


class PlantSimulator:
    """Simulates every counter of a plant and serves it through the plant's own sources.

    Use it as `async with PlantSimulator(plant) as sim:`. Units arrive on each line as a Poisson
    process at `rate_per_min` (default: the line's target rate). With `reset_every_s`, each
    station resets at exponential intervals of that mean, when the reset can be seen as a drop.
    While paused, neither units nor random resets happen. `stop_line` stops one line's units
    (a line stop) until `resume_line`; the other lines and the resets go on.
    """

    def __init__(
        self,
        plant: Plant,
        *,
        rate_per_min: float | None = None,
        seed: int | None = None,
        reset_every_s: float | None = None,
        pass_ratio: float = 0.97,
        paused: bool = False,
    ) -> None:
        if rate_per_min is not None and rate_per_min <= 0:
            raise ValueError(f"rate_per_min must be positive, not {rate_per_min}")
        if reset_every_s is not None and reset_every_s <= 0:
            raise ValueError(f"reset_every_s must be positive, not {reset_every_s}")
        self.plant = plant
        self._production = Production(plant, seed=seed, pass_ratio=pass_ratio)
        self._rates = {
            placed.line.id: rate_per_min or line_rate_per_min(placed.line)
            for placed in plant.lines()
        }
        self._reset_every_s = reset_every_s
        self._running = asyncio.Event()
        if not paused:
            self._running.set()
        self._lines_running = {line_id: asyncio.Event() for line_id in self._rates}
        for line_running in self._lines_running.values():
            line_running.set()
        self._lock = asyncio.Lock()
        self.endpoints = [
            OpcUaEndpoint(source, self._node_feeds(source))
            for source in plant.sources
            if isinstance(source, OpcUaSource)
        ]
        self.publishers = [
            MqttPublisher(source, self._topic_feeds(source))
            for source in plant.sources
            if isinstance(source, MqttSource)
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self._started: list[OpcUaEndpoint] = []

    def _mapped(self, source_id: str, text: str) -> CounterPath:
        path = CounterPath.parse(text)
        try:
            self._production.counter(path)
        except KeyError:
            raise SimulatorError(f"source '{source_id}' maps unknown counter '{text}'") from None
        return path

    def _node_feeds(self, source: OpcUaSource) -> list[NodeFeed]:
        feeds = []
        for node in source.nodes:
            path = self._mapped(source.id, node.counter)
            if node.node is None or node.index is not None:
                raise SimulatorError(
                    f"source '{source.id}': the simulator serves NodeIds only, not {node.address}"
                )
            feeds.append(NodeFeed(node.node, path, self._production.counter(path).width))
        return feeds

    def _topic_feeds(self, source: MqttSource) -> list[TopicFeed]:
        feeds = []
        for topic in source.topics:
            path = self._mapped(source.id, topic.counter)
            try:
                build_payload(topic, 0, dt.datetime.now(dt.UTC))
            except ValueError as exc:
                raise SimulatorError(
                    f"source '{source.id}', topic '{topic.topic}': {exc}"
                ) from None
            increments = self._production.counter(path).semantics == "increment"
            feeds.append(TopicFeed(topic, path, increments))
        return feeds

    async def __aenter__(self) -> Self:
        try:
            registers = self._production.registers()
            for endpoint in self.endpoints:
                await endpoint.start(registers)
                self._started.append(endpoint)
            now = dt.datetime.now(dt.UTC)
            for publisher in self.publishers:
                for path, value in registers.items():
                    publisher.offer(path, value, 0, now)
                self._spawn(publisher.run(), f"mqtt {publisher.source.id}")
            for line_id, rate in self._rates.items():
                self._spawn(self._produce(line_id, rate / 60.0), f"line {line_id}")
            if self._reset_every_s is not None:
                for station in self._production.stations:
                    self._spawn(
                        self._reset_randomly(station, self._reset_every_s),
                        f"resets {station[0]}/{station[1]}",
                    )
        except BaseException:
            await self._shutdown()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._shutdown()

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=f"sim {name}")
        task.add_done_callback(_log_failure)
        self._tasks.append(task)

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await asyncio.gather(*(endpoint.stop() for endpoint in self._started))
        self._started.clear()

    async def _produce(self, line_id: str, rate_per_s: float) -> None:
        line_running = self._lines_running[line_id]
        while True:
            await self._running.wait()
            await line_running.wait()
            await asyncio.sleep(self._production.random_delay(rate_per_s))
            async with self._lock:
                if self._running.is_set() and line_running.is_set():
                    await self._write(self._production.produce(line_id))

    async def _reset_randomly(self, station: StationKey, mean_s: float) -> None:
        while True:
            await asyncio.sleep(self._production.random_delay(1.0 / mean_s))
            async with self._lock:
                if self._running.is_set() and self._production.resettable(station):
                    log.info("simulator: reset of station %s/%s", *station)
                    await self._write(self._production.reset(station))

    async def _write(self, changes: Iterable[Change]) -> None:
        now = dt.datetime.now(dt.UTC)
        for change in changes:
            for endpoint in self.endpoints:
                await endpoint.write(change.path, change.value, now)
            for publisher in self.publishers:
                publisher.offer(change.path, change.value, change.delta, now)

    def pause(self) -> None:
        """Stop producing (registers keep their values)."""
        self._running.clear()

    def resume(self) -> None:
        """Produce again."""
        self._running.set()

    @property
    def paused(self) -> bool:
        """Whether production is paused."""
        return not self._running.is_set()

    def stop_line(self, line_id: str) -> None:
        """Stop one line: it makes no unit until `resume_line` (KeyError for an unknown line).
        Its registers keep their values; the other lines go on."""
        self._lines_running[line_id].clear()

    def resume_line(self, line_id: str) -> None:
        """Let a stopped line produce again (KeyError for an unknown line)."""
        self._lines_running[line_id].set()

    def ground_truth(self) -> dict[CounterPath, int]:
        """Units really counted per counter since start, whatever resets and rollovers did."""
        return self._production.truth()

    def raw(self) -> dict[CounterPath, int]:
        """Current register values."""
        return self._production.registers()

    @property
    def stats(self) -> SimStats:
        """Resets and rollovers so far."""
        return self._production.stats()

    async def reset_station(self, line_id: str, station_id: str) -> None:
        """Reset every register of the station to 0 now (KeyError for an unknown station)."""
        async with self._lock:
            await self._write(self._production.reset((line_id, station_id)))

    async def settle(self) -> None:
        """Return once the latest values are on the OPC UA servers and every MQTT message so far
        is published. Waits as long as a broker is away: bound it with `asyncio.timeout`."""
        async with self._lock:
            pass
        await asyncio.gather(*(publisher.flushed() for publisher in self.publishers))


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("simulator: %s stopped", task.get_name(), exc_info=error)
