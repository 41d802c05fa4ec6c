"""taktline's benchmarks: `python -m bench [NAME ...]` (see README.md); not installed."""
