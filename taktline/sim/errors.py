"""The simulator's one error: a plant it cannot simulate (bad mapping, foreign namespace)."""


class SimulatorError(RuntimeError):
    """The plant cannot be simulated as written; the message names the source and the key."""
