"""The fault-injection suite's table: each scenario records its ground-truth comparison; at the
end of the session it is printed (also with -q) and written to test-artifacts/faults.json."""

from __future__ import annotations

import json

import pytest

from tests.faults.ground_truth import Record, ScenarioResult

_RESULTS = pytest.StashKey[list[ScenarioResult]]()
ARTIFACT = "test-artifacts/faults.json"


@pytest.fixture
def record_result(pytestconfig: pytest.Config) -> Record:
    """Add a scenario's result to the session's table."""
    return pytestconfig.stash.setdefault(_RESULTS, []).append


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Print the table of the scenarios that ran, and write it as JSON."""
    results = config.stash.get(_RESULTS, [])
    if not results:
        return
    width = max(len(result.scenario) for result in results)
    terminalreporter.write_sep("=", "fault injection: InfluxDB against the ground truth")
    terminalreporter.write_line(
        f"{'scenario':<{width}}  {'produced':>9}  {'stored':>9}  {'lost':>5}  {'duplicated':>10}"
    )
    for r in results:
        terminalreporter.write_line(
            f"{r.scenario:<{width}}  {r.produced:>9}  {r.stored:>9}  {r.lost:>5}  "
            f"{r.duplicated:>10}" + ("" if r.exact else "  MISMATCH")
        )
        for note in r.notes:
            terminalreporter.write_line(f"    {note}")
    path = config.rootpath / ARTIFACT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"scenarios": [r.to_json() for r in results]}, indent=2) + "\n",
        encoding="utf-8",
    )
    terminalreporter.write_line(f"(written to {ARTIFACT})")
