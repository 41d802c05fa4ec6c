"""A taktline edge for a benchmark: generated plant and edge files, `taktline edge` in a process.

The plant has one line whose stations hold STATION_SIZE `total` counters each (32 bits), and
one OPC UA source mapping the load generator's node `i` to counter `i`. The edge has no
InfluxDB; its live bus is the benchmark's broker; its state (the outbox) lives in the folder
given. Progress is read from the outbox file itself: its `updates` sequence (every update ever
committed; AUTOINCREMENT never goes back, even after pruning) and the live-bus sink's cursor.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.children import Child
from bench.opcua_load import node_id

STATION_SIZE = 100
"""Counters per station (also keeps the plant model's linear lookups short)."""
OUTBOX_FILE = "outbox.sqlite"
LIVE_BUS_SINK = "live_bus"


@dataclass(frozen=True, slots=True)
class EdgeFiles:
    """The files of one benchmark edge."""

    config: Path
    state_dir: Path

    @property
    def outbox(self) -> Path:
        """The edge's outbox database."""
        return self.state_dir / OUTBOX_FILE


def counter_path(index: int) -> str:
    """The counter path node `index` is mapped to."""
    station, counter = divmod(index, STATION_SIZE)
    return f"bench/area/line/s{station:03d}/c{counter:03d}"


def plant_document(nodes: int, endpoint: str, publishing_ms: int, sampling_ms: int) -> Any:
    """A plant file (as data) with `nodes` counters read from one OPC UA source."""
    stations = [
        {
            "id": f"s{station:03d}",
            "name": f"Station {station}",
            "counters": [
                {"name": f"c{c:03d}", "bits": 32}
                for c in range(min(STATION_SIZE, nodes - station * STATION_SIZE))
            ],
        }
        for station in range((nodes + STATION_SIZE - 1) // STATION_SIZE)
    ]
    return {
        "name": "taktline benchmark plant",
        "sites": [
            {
                "id": "bench",
                "name": "Benchmark",
                "areas": [
                    {
                        "id": "area",
                        "name": "Area",
                        "lines": [
                            {
                                "id": "line",
                                "name": "Line",
                                "output": "s000/c000",
                                "target": {"takt_seconds": 60},
                                "stations": stations,
                            }
                        ],
                    }
                ],
            }
        ],
        "shift_calendars": {
            "default": {
                "timezone": "UTC",
                "shifts": [{"name": "all-day", "start": "00:00", "end": "00:00"}],
            }
        },
        "sources": [
            {
                "type": "opcua",
                "id": "load",
                "endpoint": endpoint,
                "publishing_interval_ms": publishing_ms,
                "sampling_interval_ms": sampling_ms,
                "nodes": [{"node": node_id(i), "counter": counter_path(i)} for i in range(nodes)],
            }
        ],
    }


def write_edge_files(
    folder: Path,
    *,
    nodes: int,
    endpoint: str,
    broker_port: int,
    publishing_ms: int,
    sampling_ms: int,
) -> EdgeFiles:
    """Write plant.yaml and edge.yaml into `folder` (state under `folder/state`)."""
    folder.mkdir(parents=True, exist_ok=True)
    plant = folder / "plant.yaml"
    plant.write_text(
        yaml.safe_dump(plant_document(nodes, endpoint, publishing_ms, sampling_ms)),
        encoding="utf-8",
    )
    edge = {
        "plant": plant.name,
        "edge_id": "bench-edge",
        "state_dir": "state",
        "live_bus": {"host": "127.0.0.1", "port": broker_port, "client_id": "bench-edge"},
        "http": {"host": "127.0.0.1", "port": 0},
    }
    config = folder / "edge.yaml"
    config.write_text(yaml.safe_dump(edge), encoding="utf-8")
    return EdgeFiles(config, folder / "state")


def edge_child(files: EdgeFiles, repo: Path) -> Child:
    """`taktline edge --config F` as a benchmark child (it prints no JSON; the outbox tells)."""
    argv = [sys.executable, "-m", "taktline.cli", "edge", "--config", str(files.config)]
    return Child("taktline edge", argv, files.config.parent / "edge.log", repo)


@dataclass(frozen=True, slots=True)
class OutboxPosition:
    """How far the edge got: updates committed, and delivered to the live bus."""

    committed: int
    delivered_live_bus: int


async def outbox_position(outbox: Path) -> OutboxPosition:
    """Read the outbox's counters (read-only; zero before the edge created the file)."""
    return await asyncio.to_thread(_read_position, outbox)


def _read_position(outbox: Path) -> OutboxPosition:
    if not outbox.exists():
        return OutboxPosition(0, 0)
    db = sqlite3.connect(f"{outbox.as_uri()}?mode=ro", uri=True)
    try:
        seq = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'updates'").fetchone()
        cursor = db.execute("SELECT seq FROM cursors WHERE sink = ?", (LIVE_BUS_SINK,)).fetchone()
    except sqlite3.OperationalError:  # the edge has not created its tables yet
        return OutboxPosition(0, 0)
    finally:
        db.close()
    return OutboxPosition(int(seq[0]) if seq else 0, int(cursor[0]) if cursor else 0)
