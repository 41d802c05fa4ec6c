"""Fixtures of the simulator tests; other test folders can import them the same way."""

from tests.fixtures.sim import example_plant as example_plant
