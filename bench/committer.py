"""Microbenchmark of the edge's committer path, without an EdgeAgent, collectors or sinks.

`python -m bench.committer [--counters N] [--rounds K] [--batch B]`: the benchmark plant of
`bench.edge_process` (N 32-bit `total` counters, one OPC UA source), in a temp dir; K rounds in
which every counter's register goes up by one, as OPC UA readings (both timestamps, GOOD),
committed in batches of B readings (B = 1000 is 100 ms of 10,000 updates/s) by the real parts:

- `intake`: the readings through `edge.agent.Intake`, from a reader task to a task that waits
  for and takes batches as the committer does (CPU per reading);
- `apply`: `CounterBook.apply` (lookup, timestamps, counter logic, decisions, rows, expiry,
  states); three of its parts are also timed on their own, on a copy of the counters:
  `timestamps` (`reading_times_ns`), `step` (`CounterLogic.step`) and `state_text`;
- `append`: `Outbox.append_rows` in a real SQLite outbox (WAL, synchronous=FULL): CPU of the
  whole process while it runs (its worker thread does the SQLite work) and wall time;
- `read_after`: a sink that keeps up: after each commit it reads the batch as CounterUpdates
  (`Outbox.read_after`, from the outbox's memory of its newest rows) and `advance`s past it.

The garbage collector runs at the edge's threshold (`edge.agent.GC_YOUNG_THRESHOLD`).

A first round (FIRST decisions) warms up and is not counted. Prints one JSON object: microseconds
per update for each stage, and `committer_cpu_us` = apply + append CPU. Figures are CPU time of
this process (time.process_time) unless named `_wall_`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.edge_process import write_edge_files
from edge.agent import GC_YOUNG_THRESHOLD
from edge.book import CounterBook
from edge.clock import now_ns, reading_times_ns
from edge.counters import CounterLogic, counter_logic
from edge.intake import Intake
from edge.mapping import SourceMap
from edge.outbox import Outbox
from taktline.config.loader import load_edge_config
from taktline.records import Quality, Reading

GOOD = Quality.GOOD


def readings(addresses: Sequence[tuple[str, str]], value: int, at: dt.datetime) -> list[Reading]:
    """One reading per address, all with register `value`, stamped like OPC UA data changes."""
    source = at - dt.timedelta(milliseconds=3)
    server = at - dt.timedelta(milliseconds=1)
    return [Reading(sid, address, value, source, server, at) for sid, address in addresses]


async def intake_cpu_s(batches: list[list[Reading]], batch: int) -> float:
    """CPU seconds to pass every reading through an Intake, taken in lists of `batch`."""
    intake = Intake(10_000)
    flat = [reading for readings in batches for reading in readings]

    async def read() -> None:
        for reading in flat:
            if not intake.add(reading):
                await intake.put(reading)

    start = time.process_time()
    reader = asyncio.create_task(read())
    taken = 0
    while taken < len(flat):
        await intake.wait_for(1)
        await asyncio.sleep(0)  # the committer's window: the reader adds meanwhile
        taken += len(intake.take(batch))
    await reader
    return time.process_time() - start


async def run(counters: int, rounds: int, batch: int) -> dict[str, Any]:
    """The figures of one run."""
    gc.set_threshold(GC_YOUNG_THRESHOLD)
    with tempfile.TemporaryDirectory(prefix="taktline-committer-") as tmp:
        files = write_edge_files(
            Path(tmp),
            nodes=counters,
            endpoint="opc.tcp://127.0.0.1:4840/bench",
            broker_port=1,
            publishing_ms=500,
            sampling_ms=0,
        )
        config = load_edge_config(files.config)
        addresses = SourceMap(config.plant, config.settings.sources).addresses()
        book = CounterBook(addresses, {})
        copies: dict[tuple[str, str], CounterLogic] = {
            address: counter_logic(mapped.counter, None) for address, mapped in addresses.items()
        }
        start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=rounds + 10)
        all_rounds = [
            readings(list(addresses), 1000 + n, start + dt.timedelta(seconds=n))
            for n in range(rounds + 1)
        ]
        batches = [r[i : i + batch] for r in all_rounds[1:] for i in range(0, len(r), batch)]
        updates = sum(len(b) for b in batches)
        cpu = dict.fromkeys(
            ("timestamps", "step", "state_text", "apply", "append", "read_after"), 0.0
        )
        append_wall = 0.0
        read = 0
        async with Outbox(files.state_dir / "outbox.sqlite", ["live"], 10_000_000) as outbox:
            rows, states = book.apply(all_rounds[0], now_ns())  # warm-up: FIRST decisions
            await outbox.append_rows(rows, states)
            for reading in all_rounds[0]:
                copies[reading.source_id, reading.address].step(reading.value, GOOD, 0, 0)
            await outbox.advance("live", counters)  # the warm-up round
            for readings_ in batches:
                t0 = time.process_time()
                times = [reading_times_ns(reading) for reading in readings_]
                t1 = time.process_time()
                logics = [copies[reading.source_id, reading.address] for reading in readings_]
                t2 = time.process_time()
                for logic, reading, (ts_ns, at_ns) in zip(logics, readings_, times, strict=True):
                    logic.step(reading.value, GOOD, ts_ns, at_ns)
                t3 = time.process_time()
                for logic in logics:
                    logic.state_text()
                t4 = time.process_time()
                rows, states = book.apply(readings_, now_ns())
                t5 = time.process_time()
                w0 = time.perf_counter()
                await outbox.append_rows(rows, states)
                append_wall += time.perf_counter() - w0
                t6 = time.process_time()
                stored = await outbox.read_after("live", batch)
                await outbox.advance("live", stored[-1].seq)
                cpu["read_after"] += time.process_time() - t6
                read += len(stored)
                cpu["timestamps"] += t1 - t0
                cpu["step"] += t3 - t2
                cpu["state_text"] += t4 - t3
                cpu["apply"] += t5 - t4
                cpu["append"] += t6 - t5
            assert read == updates, (read, updates)
    handoff = await intake_cpu_s(batches, batch)
    per = {f"{name}_us": round(s * 1e6 / updates, 3) for name, s in cpu.items()}
    return {
        "counters": counters,
        "rounds": rounds,
        "batch": batch,
        "updates": updates,
        "intake_us": round(handoff * 1e6 / updates, 3),
        **per,
        "append_wall_us": round(append_wall * 1e6 / updates, 3),
        "committer_cpu_us": round(per["apply_us"] + per["append_us"], 3),
    }


def main(argv: list[str] | None = None) -> None:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m bench.committer", description=__doc__)
    p.add_argument("--counters", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--batch", type=int, default=1000)
    args = p.parse_args(argv)
    print(json.dumps(asyncio.run(run(args.counters, args.rounds, args.batch))))


if __name__ == "__main__":
    main()
