"""Plant, edge and server files: the example loads, every broken variant gets a located error."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from taktline.cli import main
from taktline.config import ConfigError, load_edge_config, load_plant, load_server_config
from taktline.model import CounterPath
from tests.conftest import EXAMPLE_PLANT, REPO

PLANT_TEXT = EXAMPLE_PLANT.read_text(encoding="utf-8")


def test_example_plant_describes_the_vehicle_plant() -> None:
    plant = load_plant(EXAMPLE_PLANT)
    lines = {placed.line.id: placed for placed in plant.lines()}
    assert set(lines) == {"fa1", "fa2", "paint1"}
    widths = {
        str(path): counter.width for path, counter in plant.counters() if path.station == "eol"
    }
    assert widths["neustadt/final/fa1/eol/passed"] == 16
    assert widths["neustadt/final/fa2/eol/passed"] == 32
    assert lines["fa1"].output_path() == CounterPath("neustadt", "final", "fa1", "eol", "passed")
    shifts = plant.shift_calendars["three-shift"].shifts
    assert [s.name for s in shifts] == ["early", "late", "night"]
    assert shifts[2].end < shifts[2].start  # the night shift crosses midnight
    milestone = next(m for m in plant.milestones if m.threshold == 30_000_000)
    initial = sum(
        c.initial_total or 0 for p, c in plant.counters() if p.counter == milestone.counter
    )
    assert 29_990_000 <= initial < 30_000_000
    assert {s.type for s in plant.sources} == {"opcua", "mqtt"}


def test_edge_and_server_files_name_the_plant() -> None:
    edge = load_edge_config(REPO / "examples" / "edge.yaml")
    server = load_server_config(REPO / "examples" / "server.yaml")
    assert edge.plant == server.plant == load_plant(EXAMPLE_PLANT)
    assert edge.settings.state_dir.is_absolute()
    assert server.settings.api_token is not None and server.settings.api_token.env


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    assert old in PLANT_TEXT, old
    file = tmp_path / "plant.yaml"
    file.write_text(PLANT_TEXT.replace(old, new, 1), encoding="utf-8")
    return file


def _last_line_with(file: Path, needle: str) -> int:
    lines = file.read_text(encoding="utf-8").splitlines()
    return [number for number, text in enumerate(lines, 1) if needle in text][-1]


BROKEN = [
    pytest.param(
        "takt_seconds: 60}",
        "takt_seconds: sixty}",
        "takt_seconds: sixty",
        "sites[0].areas[0].lines[0].target.takt_seconds",
        "valid number",
        id="wrong-type",
    ),
    pytest.param(
        '    publishing_interval_ms: 250\n    nodes:\n      - {node: "ns=2;s=FA1',
        '    publishing_intervall_ms: 250\n    nodes:\n      - {node: "ns=2;s=FA1',
        "publishing_intervall_ms",
        "sources[0].publishing_intervall_ms",
        "did you mean 'publishing_interval_ms'",
        id="unknown-key",
    ),
    pytest.param(
        "            output: eol/passed          # a vehicle",
        "            # a vehicle",
        "id: fa1",
        "sites[0].areas[0].lines[0].output",
        "missing required key",
        id="missing-key",
    ),
    pytest.param(
        "counter: neustadt/final/fa2/eol/tested}",
        "counter: neustadt/final/fa1/eol/tested}",
        "FA2.EOL.Tested",
        "sources[1].nodes[0].counter",
        "mapped twice",
        id="mapped-twice",
    ),
    pytest.param(
        "counter: neustadt/final/fa2/eol/failed}",
        "counter: neustadt/final/fa9/eol/failed}",
        "fa9",
        "sources[1].nodes[2].counter",
        "line 'fa9' does not exist",
        id="unknown-line",
    ),
    pytest.param(
        "shift_calendar: three-shift\n            stations:\n              - id: eol\n"
        "                name: EOL test stand 2",
        "shift_calendar: two-shift\n            stations:\n              - id: eol\n"
        "                name: EOL test stand 2",
        "two-shift",
        "sites[0].areas[0].lines[1].shift_calendar",
        "no shift calendar",
        id="unknown-calendar",
    ),
    pytest.param(
        "    scope: neustadt\n    counter: passed\n    threshold",
        "    scope: neustadt/body\n    counter: passed\n    threshold",
        "neustadt/body",
        "milestones[0].scope",
        "matches no station",
        id="milestone-scope",
    ),
    pytest.param(
        '    publishing_interval_ms: 250\n    nodes:\n      - {node: "ns=2;s=FA2',
        '    password: hunter2\n    nodes:\n      - {node: "ns=2;s=FA2',
        "hunter2",
        "sources[1].password",
        "never written inline",
        id="inline-secret",
    ),
    pytest.param(
        "- id: fa2",
        "- id: fa1",
        "- id: fa1",
        "sites[0].areas[0].lines[1].id",
        "used twice",
        id="duplicate-line",
    ),
]


@pytest.mark.parametrize(("old", "new", "needle", "key_path", "message"), BROKEN)
def test_broken_plant_gets_located_error_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    old: str,
    new: str,
    needle: str,
    key_path: str,
    message: str,
) -> None:
    file = _broken(tmp_path, old, new)
    with pytest.raises(ConfigError) as caught:
        load_plant(file)
    issue = caught.value.issues[0]
    assert issue.key_path == key_path
    assert message in issue.message
    expected_line = _last_line_with(file, needle)
    assert issue.line == expected_line

    assert main(["check-config", str(file)]) == 2
    err = capsys.readouterr().err
    assert f"{file}:{expected_line}: {key_path}:" in err
    assert "Traceback" not in err
    assert "hunter2" not in err  # a secret never reaches the output


def test_broken_yaml_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "plant.yaml"
    file.write_text("name: x\nsites: [\n  - id: a\n", encoding="utf-8")
    assert main(["check-config", str(file)]) == 2
    assert re.search(rf"{re.escape(str(file))}:\d+: broken YAML", capsys.readouterr().err)


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    file = tmp_path / "plant.yaml"
    file.write_text(PLANT_TEXT + "\nname: Second name\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_plant(file)
    assert caught.value.issues[0].message == "duplicate key"
    assert caught.value.issues[0].line == len(file.read_text().splitlines())


def test_edge_file_naming_an_unknown_source(tmp_path: Path) -> None:
    file = tmp_path / "edge.yaml"
    file.write_text(f"plant: {EXAMPLE_PLANT}\nedge_id: e1\nsources: [eol-fa1, eol-fa3]\n")
    with pytest.raises(ConfigError) as caught:
        load_edge_config(file)
    assert str(caught.value.issues[0]).startswith(f"{file}:3: sources[1]: the plant has no source")


def test_check_config_prints_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(EXAMPLE_PLANT)]) == 0
    out = capsys.readouterr().out
    assert "lines 3, stations 3, counters 7, sources 3 (mqtt 1, opcua 2)" in out
    assert "neustadt/final/fa2" in out and "eol-fa1" in out


def test_secrets_come_from_environment_or_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("from-file\n")
    file = tmp_path / "server.yaml"
    file.write_text(f"plant: {EXAMPLE_PLANT}\napi_token: {{file: token}}\n")
    token = load_server_config(file).settings.api_token
    assert token is not None and token.reveal() == "from-file"
    assert "from-file" not in repr(token)
    monkeypatch.setenv("TAKTLINE_API_TOKEN", "from-env")
    server = load_server_config(REPO / "examples" / "server.yaml")
    assert server.settings.api_token is not None
    assert server.settings.api_token.reveal() == "from-env"


@pytest.mark.parametrize("kind", ["plant", "edge", "server"])
def test_schema_export(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", kind]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["additionalProperties"] is False
    assert ("sites" if kind == "plant" else "plant") in schema["required"]


OPCUA_SOURCE = """
sources:
  - type: opcua
    id: plc
    endpoint: opc.tcp://127.0.0.1:4840
    groups: {fast: {publishing_interval_ms: 100}}
    nodes:
"""


@pytest.mark.parametrize(
    ("node", "key_path", "message"),
    [
        (
            '{node: "ns=2;x=Bad", counter: neustadt/final/fa1/eol/tested}',
            "nodes[0]",
            "is not a NodeId",
        ),
        (
            '{node: "ns=2;s=A", browse_path: /Objects/A, counter: neustadt/final/fa1/eol/tested}',
            "nodes[0]",
            "exactly one of 'node' or 'browse_path'",
        ),
        (
            '{node: "ns=2;s=A", group: slow, counter: neustadt/final/fa1/eol/tested}',
            "nodes[0].group",
            "no group 'slow' (have: fast)",
        ),
        (
            '{node: "ns=2;s=A", count_edges: rising, counter: neustadt/final/fa1/eol/tested}',
            "nodes[0].count_edges",
            "map them to an `increment` counter",
        ),
    ],
)
def test_opcua_node_problems_are_located(
    tmp_path: Path, node: str, key_path: str, message: str
) -> None:
    head = PLANT_TEXT[: PLANT_TEXT.index("sources:")]
    file = tmp_path / "plant.yaml"
    file.write_text(head + OPCUA_SOURCE + f"      - {node}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_plant(file)
    issue = caught.value.issues[0]
    assert issue.key_path == f"sources[0].{key_path}"
    assert message in issue.message
    assert issue.line == len(file.read_text().splitlines())


def test_opcua_group_settings_override_the_source_defaults(tmp_path: Path) -> None:
    head = PLANT_TEXT[: PLANT_TEXT.index("sources:")]
    file = tmp_path / "plant.yaml"
    file.write_text(
        head
        + OPCUA_SOURCE
        + "      - {node: 'ns=2;s=A', group: fast, counter: neustadt/final/fa1/eol/tested}\n"
        + "      - {browse_path: /Objects/2:B, counter: neustadt/final/fa1/eol/passed}\n",
        encoding="utf-8",
    )
    source = load_plant(file).sources[0]
    assert source.type == "opcua"
    fast, default = (source.settings_for(node) for node in source.nodes)
    assert (fast.publishing_interval_ms, default.publishing_interval_ms) == (100, 500)
    assert default.sampling_interval_ms == 0 and default.discard_oldest
    assert source.nodes[1].address == "/Objects/2:B"
