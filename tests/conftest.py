"""Shared fixtures: real Mosquitto (also with TLS), InfluxDB and PostgreSQL on free ports of
127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from taktline.cli import NOISY_LIBRARIES
from tests.collectors.mqtt.pki import Pki, make_pki
from tests.fixtures.postgres import PostgresService, run_postgres
from tests.fixtures.services import (
    InfluxService,
    MosquittoService,
    run_influxd,
    run_mosquitto,
    run_secured_mosquitto,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_PLANT = REPO / "examples" / "plant.yaml"

pytest_plugins = ["tests.fixtures.hang_watchdog"]


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


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresService]:
    """One PostgreSQL cluster for the session; tests take a fresh database each."""
    with run_postgres() as service:
        yield service


@pytest.fixture(params=["sqlite", "postgresql"])
def state_location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a test's state store is: a folder (SQLite), or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "state"
    service: PostgresService = request.getfixturevalue("postgres")
    return service.new_database()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A throwaway test CA with a server certificate for 127.0.0.1 and a client certificate."""
    return make_pki(tmp_path)


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Pki) -> Iterator[MosquittoService]:
    """Mosquitto that wants TLS, a client certificate of the test CA, and user `edge` with
    password `s3cret`."""
    with run_secured_mosquitto(
        tmp_path, pki.ca, pki.server_cert, pki.server_key, {"edge": "s3cret"}
    ) as service:
        yield service


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """Undo what an in-process `taktline.cli.main()` does to logging (root handlers, the levels
    of chatty libraries), so that no test's log assertions depend on which tests ran before."""
    root = logging.getLogger()
    handlers, level = set(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in NOISY_LIBRARIES}
    yield
    for handler in list(root.handlers):
        if type(handler) is logging.StreamHandler and handler not in handlers:  # basicConfig's
            root.removeHandler(handler)
    root.setLevel(level)
    for name, was in levels.items():
        logging.getLogger(name).setLevel(was)
