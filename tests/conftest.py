"""Shared fixtures: real Mosquitto and InfluxDB on free ports of 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.services import InfluxService, MosquittoService, run_influxd, run_mosquitto

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_PLANT = REPO / "examples" / "plant.yaml"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoService]:
    """A fresh Mosquitto for one test (persistence on, so restart() keeps sessions)."""
    folder = tmp_path / "mosquitto"
    folder.mkdir()
    with run_mosquitto(folder) as service:
        yield service


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxService]:
    """One influxd for the session; tests use their own database names or drop `taktline`."""
    with run_influxd(tmp_path_factory.mktemp("influxd")) as service:
        yield service
