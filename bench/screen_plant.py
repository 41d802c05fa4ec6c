"""Generated files of `screen_latency`: a plant of many lines, an edge and a server config.

The plant has a `probe` line (one station `st`, one counter `c0`, its output) read from the PLC
stand-in's node 0 (bench.screen_plc), and `lines` background lines `l000`, `l001`, ... with
`counters` counters `c0`, `c1`, ... each (output `st/c0`), read from nodes 1, 2, ... in that
order. One shift lasts all day (UTC), so every line is in a shift whenever the benchmark runs
(except across midnight UTC, when the shift count starts again).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.edge_process import EdgeFiles
from bench.opcua_load import node_id

PROBE_LINE = "probe"
STATION = "st"
EDGE_ID = "bench-screen-edge"


def line_id(index: int) -> str:
    """The id of background line `index`."""
    return f"l{index:03d}"


@dataclass(frozen=True, slots=True)
class Wiring:
    """How the edge and the server are set up (all of it goes into the results)."""

    lines: int
    counters: int
    endpoint: str
    broker_port: int
    server_port: int
    publishing_ms: int
    sampling_ms: int
    live_bus_max_rate_hz: float
    commit_interval_ms: int


@dataclass(frozen=True, slots=True)
class ScreenFiles:
    """The files of one run."""

    edge: EdgeFiles
    server_config: Path

    @property
    def folder(self) -> Path:
        """Where the files (and the logs) are."""
        return self.server_config.parent


def _line(line: str, name: str, counters: int) -> dict[str, Any]:
    return {
        "id": line,
        "name": name,
        "output": f"{STATION}/c0",
        "target": {"takt_seconds": 60},
        "stations": [
            {
                "id": STATION,
                "name": "Station",
                "counters": [{"name": f"c{c}", "bits": 32} for c in range(counters)],
            }
        ],
    }


def plant_document(wiring: Wiring) -> dict[str, Any]:
    """The plant (as data): the probe line and the background lines on one OPC UA source."""
    lines = [_line(PROBE_LINE, "Probe line", 1)]
    nodes = [{"node": node_id(0), "counter": f"bench/area/{PROBE_LINE}/{STATION}/c0"}]
    for index in range(wiring.lines):
        lines.append(_line(line_id(index), f"Line {index}", wiring.counters))
        nodes += [
            {
                "node": node_id(1 + index * wiring.counters + c),
                "counter": f"bench/area/{line_id(index)}/{STATION}/c{c}",
            }
            for c in range(wiring.counters)
        ]
    return {
        "name": "taktline screen benchmark plant",
        "sites": [
            {
                "id": "bench",
                "name": "Benchmark",
                "areas": [{"id": "area", "name": "Area", "lines": lines}],
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
                "id": "plc",
                "endpoint": wiring.endpoint,
                "publishing_interval_ms": wiring.publishing_ms,
                "sampling_interval_ms": wiring.sampling_ms,
                "nodes": nodes,
            }
        ],
    }


def write_files(folder: Path, wiring: Wiring) -> ScreenFiles:
    """plant.yaml, edge.yaml and server.yaml in `folder` (states under it)."""
    folder.mkdir(parents=True, exist_ok=True)
    plant = folder / "plant.yaml"
    plant.write_text(yaml.safe_dump(plant_document(wiring)), encoding="utf-8")
    broker = {"host": "127.0.0.1", "port": wiring.broker_port}
    edge = {
        "plant": plant.name,
        "edge_id": EDGE_ID,
        "state_dir": "edge-state",
        "live_bus": broker | {"client_id": EDGE_ID},
        "live_bus_max_rate_hz": wiring.live_bus_max_rate_hz,
        "outbox": {"commit_interval_ms": wiring.commit_interval_ms},
        "http": {"host": "127.0.0.1", "port": 0},
    }
    server = {
        "plant": plant.name,
        "live_bus": broker | {"client_id": "bench-screen-server"},
        "http": {"host": "127.0.0.1", "port": wiring.server_port},
        "state_dir": "server-state",
    }
    edge_config = folder / "edge.yaml"
    edge_config.write_text(yaml.safe_dump(edge), encoding="utf-8")
    server_config = folder / "server.yaml"
    server_config.write_text(yaml.safe_dump(server), encoding="utf-8")
    return ScreenFiles(EdgeFiles(edge_config, folder / "edge-state"), server_config)
