"""A PLC that can reboot: one OPC UA source of the plant served by a PlcServer
(tests/collectors/plc.py) whose line makes units with the simulator's production model.

The simulator's own servers cannot be stopped and started again, so a source whose PLC must
reboot is served here instead. `reboot()` is a power cycle of a stopped line: the OPC UA server
goes away and every register of the source comes back at 0. The ground truth (`truth()`)
counts every unit made, before and after.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self

from taktline.localbroker import free_port
from taktline.model.paths import CounterPath
from taktline.model.plant import Plant
from taktline.model.sources import OpcUaSource
from taktline.sim.opcua import VARIANT_TYPES
from taktline.sim.production import Production
from tests.collectors.plc import PlcServer


class RebootablePlc:
    """`async with RebootablePlc(plant, source_id, ...) as plc`: serving, production paused."""

    def __init__(
        self, plant: Plant, source_id: str, *, rate_per_min: float, seed: int, pass_ratio: float
    ) -> None:
        source = next(s for s in plant.sources if s.id == source_id)
        assert isinstance(source, OpcUaSource)
        self._production = Production(plant, seed=seed, pass_ratio=pass_ratio)
        self._names: dict[CounterPath, str] = {}
        for node in source.nodes:
            assert node.node is not None, "the PLC serves NodeIds (ns=2;s=NAME) only"
            self._names[CounterPath.parse(node.counter)] = node.node.split(";s=", 1)[1]
        lines = {path.line for path in self._names}
        assert len(lines) == 1, "one PLC runs one line"
        (self._line,) = lines
        registers = self._production.registers()
        self.server = PlcServer(
            free_port(),
            {
                name: (VARIANT_TYPES[self._production.counter(path).width], registers[path])
                for path, name in self._names.items()
            },
        )
        self.source = source.model_copy(update={"endpoint": self.server.endpoint})
        """The plant's source, pointing at this PLC."""
        self.reboots = 0
        self._rate_per_s = rate_per_min / 60.0
        self._running = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self.server.start()
        assert all(self.server.address(n).startswith("ns=2;") for n in self._names.values())
        self._task = asyncio.create_task(self._produce(), name=f"plc {self.source.id}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.server.stop()

    def pause(self) -> None:
        """Stop the line (the registers keep their values)."""
        self._running.clear()

    def resume(self) -> None:
        """Run the line again."""
        self._running.set()

    def truth(self) -> dict[CounterPath, int]:
        """Units each of the source's counters really counted since start."""
        truth = self._production.truth()
        return {path: truth[path] for path in self._names}

    def registers(self) -> dict[CounterPath, int]:
        """The source's register values now."""
        registers = self._production.registers()
        return {path: registers[path] for path in self._names}

    async def reboot(self, down_s: float) -> None:
        """Power cycle a stopped line's PLC: stop the server, every register to 0, start it
        again after `down_s` seconds."""
        assert not self._running.is_set(), "stop the line (pause) first"
        async with self._lock:
            await self.server.stop()
            for station in {(path.line, path.station) for path in self._names}:
                for change in self._production.reset(station):
                    if change.path in self._names:
                        await self.server.write(self._names[change.path], change.value)
            await asyncio.sleep(down_s)
            await self.server.start()
            self.reboots += 1

    async def _produce(self) -> None:
        while True:
            await self._running.wait()
            await asyncio.sleep(self._production.random_delay(self._rate_per_s))
            async with self._lock:
                if not self._running.is_set():
                    continue
                for change in self._production.produce(self._line):
                    if change.path in self._names:
                        await self.server.write(self._names[change.path], change.value)
