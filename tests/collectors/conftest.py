"""Fixtures for the collector tests: a real OPC UA server on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from asyncua import ua

from taktline.localbroker import free_port
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
