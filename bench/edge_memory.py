"""Where the edge's memory goes at N OPC UA counters: its start-up stages, and the whole process.

`python -m bench.edge_memory --counters 10000` starts the load generator (`bench.opcua_load`)
and a Mosquitto, writes the benchmark's plant and edge files (`bench.edge_process`), and then
measures, each in a process of its own (so the files' writing is not counted):

1. `stages`: the edge's start-up stages in-process, as `taktline edge` runs them: `imports`
   (the CLI and the agent's modules), `config` (load_edge_config), `source_map` (SourceMap and
   one counter logic per counter), `collector` (the OPC UA collector made), `subscribed` (N
   readings received: every node's first value) and `running` (`--run-s` more seconds of
   notifications); VmRSS and VmHWM (the peak so far) after each, in MB;
2. `traced`: the same stages with tracemalloc on, against a generator counting at
   TRACED_RATE_HZ: the Python heap after each and its peak during it, and the `--top`
   allocation sites that grew most in it (tracemalloc inflates the process's own RSS, so that
   run reports none);
3. `edge_process`: `taktline edge --config` as a child, VmRSS and VmHWM from /proc once it
   committed N updates, and again after `--run-s` seconds;
4. `agent_traced`: the whole edge agent in-process with tracemalloc on, against the
   TRACED_RATE_HZ generator: `imports`, `config`, `started` (outbox, sinks, collectors up),
   `committed` (every counter has a total) and `running` (`--run-s` later): where the whole
   process's heap goes.

It prints one JSON document on stdout. `--stages CONFIG` and `--agent CONFIG` are the
in-process runners of 1, 2 and 4.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.procstat import memory_mb

if TYPE_CHECKING:
    from bench.edge_process import EdgeFiles

REPO = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
START_TIMEOUT_S = 120.0
_ERROR_CHARS = 600
POLL_S = 0.25
EDGE_MODULES = ("taktline.cli", "edge.agent")
"""What `taktline edge` imports before it reads its config."""
TRACED_RATE_HZ = 0.1
"""Under tracemalloc a process runs several times slower: the generator of the traced runs
counts at this rate (the heap per counter is the same; only what is in flight is less)."""


class StageLog:
    """Memory after each stage: RSS and peak, or (traced) the heap and its top growth."""

    def __init__(self, *, trace: bool, top: int) -> None:
        self.stages: list[dict[str, Any]] = []
        self._trace = trace
        self._top = top
        self._snapshot: tracemalloc.Snapshot | None = None
        if trace:
            tracemalloc.start()
            self._snapshot = self._take()

    def mark(self, stage: str) -> None:
        """Record the memory now, at the end of `stage`."""
        entry: dict[str, Any] = {"stage": stage}
        if self._snapshot is None:
            rss, hwm = memory_mb(os.getpid())
            entry.update(rss_mb=round(rss, 1), hwm_mb=round(hwm, 1))
        else:
            current, peak = tracemalloc.get_traced_memory()
            snapshot = self._take()
            grown = sorted(
                snapshot.compare_to(self._snapshot, "lineno"),
                key=lambda stat: stat.size_diff,
                reverse=True,
            )
            entry.update(
                heap_mb=round(current / MB, 1),
                heap_peak_mb=round(peak / MB, 1),
                top=[
                    {
                        "where": str(stat.traceback[0]),
                        "mb": round(stat.size_diff / MB, 2),
                        "blocks": stat.count_diff,
                    }
                    for stat in grown[: self._top]
                ],
            )
            tracemalloc.reset_peak()
            self._snapshot = snapshot
        self.stages.append(entry)

    @staticmethod
    def _take() -> tracemalloc.Snapshot:
        return tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )


async def run_stages(config: Path, log: StageLog, run_s: float) -> None:
    """The edge's start-up stages in this process, each followed by `log.mark`."""
    log.mark("interpreter")
    for module in EDGE_MODULES:
        importlib.import_module(module)
    log.mark("imports")
    from collectors.opcua import OpcUaCollector
    from edge.counters import counter_logic
    from edge.mapping import SourceMap
    from taktline.config import load_edge_config
    from taktline.model.sources import OpcUaSource

    edge_config = load_edge_config(config)
    log.mark("config")
    source_map = SourceMap(edge_config.plant, edge_config.settings.sources)
    logic = {path: counter_logic(counter, None) for path, counter in source_map.counters().items()}
    log.mark("source_map")
    (source,) = source_map.sources
    assert isinstance(source, OpcUaSource)
    collector = OpcUaCollector(source)
    log.mark("collector")
    async with collector:
        readings = aiter(collector.readings())
        for _ in logic:
            await anext(readings)
        log.mark("subscribed")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(run_s):
                while True:
                    await anext(readings)
    log.mark("running")


async def run_agent(config: Path, log: StageLog, run_s: float) -> None:
    """The whole edge agent in this process, `log.mark` after each of its stages."""
    log.mark("interpreter")
    for module in EDGE_MODULES:
        importlib.import_module(module)
    log.mark("imports")
    from edge.agent import EdgeAgent
    from taktline.config import load_edge_config

    edge_config = load_edge_config(config)
    log.mark("config")
    async with EdgeAgent(edge_config) as agent:
        log.mark("started")
        runner = asyncio.create_task(agent.run())
        paths = list(agent.map.counters())
        async with asyncio.timeout(START_TIMEOUT_S):
            while any(agent.total(path) is None for path in paths):
                if runner.done():
                    runner.result()  # the agent failed: say why
                await asyncio.sleep(POLL_S)
        log.mark("committed")
        await asyncio.sleep(run_s)
        log.mark("running")
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


def stages_main(config: Path, *, agent: bool, trace: bool, top: int, run_s: float) -> None:
    """`--stages`/`--agent`: run the stages, print `{"event": "stages", ...}`."""
    log = StageLog(trace=trace, top=top)
    asyncio.run((run_agent if agent else run_stages)(config, log, run_s))
    print(json.dumps({"event": "stages", "stages": log.stages}), flush=True)


async def measure(counters: int, run_s: float, top: int, folder: Path) -> dict[str, Any]:
    """Every measurement of the module docstring (one broker, a generator per rate)."""
    from taktline.localbroker import mosquitto

    result: dict[str, Any] = {
        "counters": counters,
        "run_s": run_s,
        "traced_rate_hz": TRACED_RATE_HZ,
    }
    async with mosquitto() as broker_port:
        async with _generator(counters, 1.0, broker_port, folder / "full") as files:
            argv = ["--stages", str(files.config), "--run-s", str(run_s)]
            result["stages"] = await _stages_child("stages", argv, folder)
            result["edge_process"] = await _edge_process(files, counters, run_s)
        rate = TRACED_RATE_HZ
        async with _generator(counters, rate, broker_port, folder / "slow") as files:
            for key, how in (("traced", "--stages"), ("agent_traced", "--agent")):
                argv = [how, str(files.config), "--trace", "--run-s", str(run_s)]
                result[key] = await _stages_child(key, [*argv, "--top", str(top)], folder)
    return result


@contextlib.asynccontextmanager
async def _generator(
    counters: int, rate_hz: float, broker_port: int, folder: Path
) -> AsyncIterator[EdgeFiles]:
    """A load generator counting at `rate_hz`, and edge files reading it, in `folder`."""
    # imported here: the in-process stages must not count the load generator's asyncua
    from bench.children import Child, running
    from bench.edge_process import write_edge_files
    from bench.opcua_load import endpoint
    from taktline.localbroker import free_port

    port = free_port()
    argv = [sys.executable, "-m", "bench.opcua_load", "--nodes", str(counters)]
    argv += ["--port", str(port), "--rate", str(rate_hz)]
    await asyncio.to_thread(folder.mkdir, parents=True)
    generator = Child("load generator", argv, folder / "generator.log", REPO)
    async with running(generator):
        await generator.wait_for("ready", START_TIMEOUT_S)
        yield write_edge_files(
            folder / "edge",
            nodes=counters,
            endpoint=endpoint(port),
            broker_port=broker_port,
            publishing_ms=500,
            sampling_ms=0,
        )


async def _stages_child(name: str, args: list[str], folder: Path) -> Any:
    """The stages a `--stages`/`--agent` child reports, or `{"error": why}` when it fails
    (the other measurements still run)."""
    from bench.children import Child, ChildError, running

    argv = [sys.executable, "-m", "bench.edge_memory", *args]
    child = Child(name, argv, folder / f"{name}.log", REPO)
    try:
        async with running(child):
            return (await child.wait_for("stages", START_TIMEOUT_S))["stages"]
    except ChildError as exc:
        return {"error": str(exc)[-_ERROR_CHARS:]}


async def _edge_process(files: EdgeFiles, counters: int, run_s: float) -> dict[str, float]:
    from bench.children import running
    from bench.edge_process import edge_child, outbox_position

    edge = edge_child(files, REPO)
    figures: dict[str, float] = {}
    started = time.monotonic()
    async with running(edge):
        async with asyncio.timeout(START_TIMEOUT_S):
            while (await outbox_position(files.outbox)).committed < counters:
                edge.alive()
                await asyncio.sleep(POLL_S)
        figures["startup_s"] = round(time.monotonic() - started, 1)
        rss, hwm = memory_mb(edge.pid)
        figures.update(committed_rss_mb=round(rss, 1), committed_hwm_mb=round(hwm, 1))
        await asyncio.sleep(run_s)
        edge.alive()
        rss, hwm = memory_mb(edge.pid)
        figures.update(running_rss_mb=round(rss, 1), running_hwm_mb=round(hwm, 1))
    return figures


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m bench.edge_memory`."""
    parser = argparse.ArgumentParser(prog="python -m bench.edge_memory", description=__doc__)
    parser.add_argument("--counters", type=int, default=10_000, help="OPC UA nodes and counters")
    parser.add_argument("--run-s", type=float, default=5.0, help="seconds of running measured")
    parser.add_argument("--top", type=int, default=8, help="allocation sites shown per stage")
    parser.add_argument("--stages", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--agent", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    config = args.agent or args.stages
    if config is not None:
        agent = args.agent is not None
        stages_main(config, agent=agent, trace=args.trace, top=args.top, run_s=args.run_s)
        return 0
    with tempfile.TemporaryDirectory(prefix="taktline-edge-memory-") as tmp:
        result = asyncio.run(measure(args.counters, args.run_s, args.top, Path(tmp)))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
