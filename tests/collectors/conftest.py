"""Fixtures for the collector tests: a real OPC UA server on a free port, and sources for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from asyncua import ua

from collectors.opcua import OpcUaCollector
from collectors.support import Backoff
from taktline.localbroker import free_port
from taktline.model.sources import OpcUaSource
from tests.collectors.plc import PlcServer

TESTED, PASSED, FAILED = "FA1.EOL.Tested", "FA1.EOL.Passed", "FA1.EOL.Failed"


@pytest.fixture
async def plc() -> AsyncIterator[PlcServer]:
    """A PLC with a 16-bit and two 32-bit counters, started."""
    server = PlcServer(
        free_port(),
        {
            TESTED: (ua.VariantType.UInt16, 65_530),
            PASSED: (ua.VariantType.UInt32, 16_250_210),
            FAILED: (ua.VariantType.UInt32, 61_830),
        },
    )
    await server.start()
    yield server
    await server.stop()


def opcua_source(plc: PlcServer, addresses: list[str], **settings: Any) -> OpcUaSource:
    """A source reading `addresses` of `plc`, publishing every 50 ms unless `settings` say."""
    return OpcUaSource.model_validate(
        {
            "type": "opcua",
            "id": "plc-test",
            "endpoint": plc.endpoint,
            "publishing_interval_ms": 50,
            "nodes": [
                {"node": address, "counter": f"s/a/l/st/c{i}"}
                for i, address in enumerate(addresses)
            ],
        }
        | settings
    )


def fast_collector(source: OpcUaSource) -> OpcUaCollector:
    """A collector with short backoff and timeouts, for tests."""
    return OpcUaCollector(
        source, backoff=Backoff(0.1, 1.0), request_timeout_s=2.0, watchdog_interval_s=0.5
    )
