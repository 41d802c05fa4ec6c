"""`taktline demo`: simulator, edge and server on one machine, on embedded defaults."""

from taktline.demo.runner import PLANT_FILE, run_demo

__all__ = ["PLANT_FILE", "run_demo"]
