"""Alert settings in the plant file: defaults, overrides that name only what they change, and
located errors for unknown lines and stations, wrong margins and bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from taktline.config import ConfigError, load_plant
from taktline.model.alerts import AlertSettings
from tests.conftest import EXAMPLE_PLANT

PLANT_TEXT = EXAMPLE_PLANT.read_text(encoding="utf-8")


def plant_file(tmp_path: Path, alerts: str) -> Path:
    """The example plant with an `alerts` section appended."""
    file = tmp_path / "plant.yaml"
    file.write_text(PLANT_TEXT + "\nalerts:\n" + alerts, encoding="utf-8")
    return file


def line_of(file: Path, needle: str) -> int:
    lines = file.read_text(encoding="utf-8").splitlines()
    return max(number for number, text in enumerate(lines, 1) if needle in text)


def test_defaults_are_those_of_the_issue() -> None:
    alerts = load_plant(EXAMPLE_PLANT).alerts
    assert (alerts.line_stopped.after_takts, alerts.line_stopped.min_minutes) == (5, 3)
    assert (alerts.rate_below_target.percent, alerts.rate_below_target.for_minutes) == (80, 15)
    at_risk = alerts.shift_target_at_risk
    assert (at_risk.percent, at_risk.after_minutes_into_shift) == (90, 60)
    assert alerts.yield_below.model_dump(include={"percent", "window_minutes", "min_units"}) == {
        "percent": 95,
        "window_minutes": 60,
        "min_units": 50,
    }
    assert alerts.source_stale.after_minutes == 2
    assert (alerts.edge_backlog.for_minutes, alerts.edge_backlog.min_depth) == (10, 1000)
    assert alerts.milestone.enabled and alerts.milestone.severity == "info"
    assert alerts.lines == {}


def test_a_line_override_changes_only_the_keys_it_names(tmp_path: Path) -> None:
    file = plant_file(
        tmp_path,
        """  line_stopped: {after_takts: 4, severity: warning}
  yield_below: {min_units: 20}
  lines:
    fa1:
      line_stopped: {min_minutes: 10}
      yield_below: {percent: 90, clear_percent: 93}
      stations:
        eol: {yield_below: {window_minutes: 30}}
""",
    )
    alerts = load_plant(file).alerts
    fa1 = alerts.for_line("fa1")
    assert fa1.line_stopped.model_dump(exclude={"enabled", "clear_takts", "clear_for_minutes"}) == {
        "severity": "warning",  # plant-wide
        "after_takts": 4,  # plant-wide
        "min_minutes": 10,  # the line's
    }
    assert alerts.for_line("fa2").line_stopped.min_minutes == 3
    eol = alerts.for_station("fa1", "eol")
    assert (eol.percent, eol.clear_percent, eol.min_units, eol.window_minutes) == (90, 93, 20, 30)
    assert alerts.for_station("fa2", "eol").percent == 95


def test_rules_can_be_switched_off(tmp_path: Path) -> None:
    file = plant_file(
        tmp_path,
        """  rate_below_target: {enabled: false}
  lines:
    paint1: {rate_below_target: {enabled: true}}
""",
    )
    alerts = load_plant(file).alerts
    assert not alerts.for_line("fa1").rate_below_target.enabled
    assert alerts.for_line("paint1").rate_below_target.enabled


@pytest.mark.parametrize(
    ("alerts", "needle", "key_path", "message"),
    [
        (
            "  lines:\n    fa9: {line_stopped: {min_minutes: 5}}\n",
            "fa9:",
            "alerts.lines.fa9",
            "no line 'fa9' in the plant (have: fa1, fa2, paint1)",
        ),
        (
            "  lines:\n    fa1:\n      stations:\n        paint: {yield_below: {percent: 90}}\n",
            "paint:",
            "alerts.lines.fa1.stations.paint",
            "no station 'paint' in line 'fa1' (eol)",
        ),
        (
            "  rate_below_target: {percent: 85, clear_percent: 80}\n",
            "rate_below_target",
            "alerts.rate_below_target.clear_percent",
            "clear_percent (80) must be at least percent (85)",
        ),
        (
            "  lines:\n    fa2:\n      yield_below: {percent: 98}\n",
            "yield_below",
            "alerts.lines.fa2.yield_below.clear_percent",
            "clear_percent (97) must be at least percent (98)",
        ),
        (
            "  lines:\n    fa1:\n      line_stopped: {after_takts: 2}\n",
            "line_stopped",
            "alerts.lines.fa1.line_stopped.clear_takts",
            "clear_takts (3) must be at most after_takts (2)",
        ),
        (
            "  edge_backlog: {min_depth: 50}\n",
            "edge_backlog",
            "alerts.edge_backlog.clear_depth",
            "clear_depth (100) must be below min_depth (50)",
        ),
        (
            "  lines:\n    fa1:\n      stations:\n        eol: {yield_below: {percent: 99}}\n",
            "eol:",
            "alerts.lines.fa1.stations.eol.yield_below.clear_percent",
            "clear_percent (97) must be at least percent (99)",
        ),
    ],
)
def test_cross_reference_problems_are_located(
    tmp_path: Path, alerts: str, needle: str, key_path: str, message: str
) -> None:
    file = plant_file(tmp_path, alerts)
    with pytest.raises(ConfigError) as caught:
        load_plant(file)
    [issue] = caught.value.issues
    assert (issue.key_path, issue.message) == (key_path, message)
    assert issue.line == line_of(file, needle)


@pytest.mark.parametrize(
    ("alerts", "key_path", "message"),
    [
        (
            "  line_stopped: {min_minute: 5}\n",
            "alerts.line_stopped.min_minute",
            "unknown key 'min_minute' (did you mean 'min_minutes'?)",
        ),
        (
            "  yield_below: {min_units: 0}\n",
            "alerts.yield_below.min_units",
            "greater than or equal to 1",
        ),
        (
            "  rate_below_target: {percent: 120}\n",
            "alerts.rate_below_target.percent",
            "less than or equal to 100",
        ),
        (
            "  source_stale: {severity: page}\n",
            "alerts.source_stale.severity",
            "'info', 'warning' or 'critical'",
        ),
        (
            "  lines:\n    Line-1: {}\n",
            "alerts.lines.Line-1.[key]",
            "should match pattern",
        ),
        (
            "  lines:\n    fa1: {edge_backlog: {min_depth: 5}}\n",
            "alerts.lines.fa1.edge_backlog",
            "unknown key 'edge_backlog'",
        ),
    ],
)
def test_bad_values_are_located(tmp_path: Path, alerts: str, key_path: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_plant(plant_file(tmp_path, alerts))
    [issue] = caught.value.issues
    assert issue.key_path == key_path
    assert message in issue.message
    assert issue.line is not None and issue.line > PLANT_TEXT.count("\n")


def test_problems_need_no_plant_file() -> None:
    settings = AlertSettings.model_validate({"lines": {"x": {}}})
    assert settings.problems({"fa1": ["eol"]}) == [
        (("alerts", "lines", "x"), "no line 'x' in the plant (have: fa1)")
    ]
