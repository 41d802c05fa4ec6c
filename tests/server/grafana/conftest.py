"""Grafana tests run against `GrafanaContractServer`: Grafana itself cannot run here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.grafana_contract import GrafanaContractServer, run_grafana_contract

GRAFANA_TOKEN = "glsa_contract-test-token-5b1d"
"""The service-account token the contract server accepts."""


@pytest.fixture
def grafana() -> Iterator[GrafanaContractServer]:
    """A fresh Grafana contract server (empty state) on a free port, accepting GRAFANA_TOKEN."""
    with run_grafana_contract(GRAFANA_TOKEN) as server:
        yield server
