"""An edge killed with SIGKILL while it counts a PLC register, twice, and restarted: the
lifetime total continues exactly (issue 5).

A real `taktline edge` process subscribes to a 16-bit register on a real asyncua server (the
PLC). The register keeps counting while the edge is dead and rolls over during the run; after
each restart the edge resumes from its persisted counter state, so the final total is the
initial total plus every unit made, and the stored deltas add up to the same.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from asyncua import ua

from taktline.localbroker import free_port
from tests.collectors.plc import PlcServer
from tests.edge.test_mqtt_ack import committed, start_edge, wait_until
from tests.fixtures.processes import interrupt
from tests.fixtures.services import MosquittoService

COUNTER = "s1/a1/l1/eol/tested"
INITIAL_TOTAL = 1_000_000
START = 65_000
"""The register starts near the top of its 16 bits: it rolls over during the run."""
PLANT = """
name: Test plant
sites:
  - id: s1
    name: Site
    areas:
      - id: a1
        name: Area
        lines:
          - id: l1
            name: Line 1
            output: eol/tested
            target: {takt_seconds: 60}
            stations:
              - id: eol
                name: EOL
                counters:
                  - {name: tested, bits: 16, initial_total: INITIAL, max_rate_per_min: 6000}
shift_calendars:
  default:
    timezone: Europe/Berlin
    shifts: [{name: day, start: "06:00", end: "14:00"}]
sources:
  - type: opcua
    id: eol-plc
    endpoint: ENDPOINT
    publishing_interval_ms: 50
    sampling_interval_ms: 0
    nodes:
      - {node: "ADDRESS", counter: s1/a1/l1/eol/tested}
"""


async def test_sigkill_while_counting_a_register_continues_the_total_exactly(
    tmp_path: Path, mosquitto: MosquittoService
) -> None:
    plc = PlcServer(free_port(), {"tested": (ua.VariantType.UInt16, START)})
    await plc.start()
    made = 0

    async def produce(units: int) -> None:
        nonlocal made
        for _ in range(units):
            made += 1
            await plc.write("tested", (START + made) % 65_536)
            await asyncio.sleep(0.01)

    (tmp_path / "plant.yaml").write_text(
        PLANT.replace("INITIAL", str(INITIAL_TOTAL))
        .replace("ENDPOINT", plc.endpoint)
        .replace("ADDRESS", plc.address("tested"))
    )
    config = tmp_path / "edge.yaml"
    config.write_text(
        "plant: plant.yaml\nedge_id: edge-t\nstate_dir: state\n"
        f"live_bus: {{host: 127.0.0.1, port: {mosquitto.port}}}\n"
        "outbox: {commit_interval_ms: 20}\nhttp: {host: 127.0.0.1, port: 0}\n"
    )
    state, log = tmp_path / "state", tmp_path / "edge.log"
    edge = start_edge(config, log)
    try:
        await wait_until(lambda: committed(state, COUNTER)[0] == INITIAL_TOTAL, "first read", 30)
        for _ in range(2):
            await produce(150)  # counting, then the kill lands mid-flow
            os.kill(edge.pid, signal.SIGKILL)
            edge.wait(10)
            await produce(100)  # the PLC goes on while the edge is dead
            edge = start_edge(config, log)
        await produce(300)  # rolls over: 65,000 + 800 > 65,535
        expected = INITIAL_TOTAL + made
        await wait_until(lambda: committed(state, COUNTER)[0] == expected, "caught up", 60)
        await asyncio.sleep(1.0)  # anything counted twice would show up now
        total, deltas = committed(state, COUNTER)
    finally:
        await interrupt(edge)  # before the PLC stops: the edge says goodbye to it
        await plc.stop()
    assert START + made > 65_536, "the register did not roll over: the run proves less"
    assert (total, deltas) == (expected, made), log.read_text()[-3000:]
