"""The plant simulator: a plant's OPC UA servers and MQTT devices, counting with ground truth.

`taktline.sim.runner.run_simulator` is the `taktline sim` command.
"""

from taktline.sim.errors import SimulatorError
from taktline.sim.production import SimStats
from taktline.sim.relocate import relocate
from taktline.sim.simulator import PlantSimulator

__all__ = ["PlantSimulator", "SimStats", "SimulatorError", "relocate"]
