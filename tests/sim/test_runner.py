"""`taktline sim`: the runner stops at its duration and prints the ground-truth table."""

from __future__ import annotations

import pytest

from taktline.model import Plant
from taktline.sim import relocate
from taktline.sim.runner import run_simulator
from tests.fixtures.services import MosquittoService
from tests.fixtures.sim import only_sources


async def test_the_runner_stops_at_its_duration_with_a_ground_truth_table(
    mosquitto: MosquittoService, example_plant: Plant, capsys: pytest.CaptureFixture[str]
) -> None:
    plant = relocate(only_sources(example_plant, "paint-mqtt"), mqtt_port=mosquitto.port)
    await run_simulator(plant, rate=600, duration=0.5, seed=1)
    header, *rows = capsys.readouterr().out.strip().splitlines()
    assert header.split() == ["counter", "truth", "raw", "resets", "rollovers"]
    table = {row.split()[0]: [int(cell) for cell in row.split()[1:]] for row in rows}
    assert set(table) == {str(path) for path, _ in plant.counters()}
    assert sum(truth for truth, *_ in table.values()) > 0
    assert all(resets == 0 for _, _, resets, _ in table.values())
