"""deploy/systemd: the edge's units, checked by systemd's own tools and against the CLI.

`systemd-analyze verify` loads each unit as systemd would (it only warns about unknown keys and
bad values, so any output fails the test), and `systemd-analyze security --offline` rates its
hardening. The units start `/opt/taktline/bin/taktline`, which does not exist here, so the
copies verified name this environment's `taktline` instead; nothing else is changed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from taktline.cli import main
from taktline.config import load_edge_config
from taktline.model.secrets import SecretRef
from tests.fixtures.services import require_binary

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "deploy" / "systemd"
UNIT = SYSTEMD / "taktline-edge.service"
TEMPLATE = SYSTEMD / "taktline-edge@.service"
EXAMPLE_EDGE = SYSTEMD / "edge.yaml"
STACK_PLANT = REPO / "deploy" / "config" / "plant.yaml"
INSTALLED = "/opt/taktline/bin/taktline"

Unit = dict[str, list[tuple[str, str]]]


def parse_unit(file: Path) -> Unit:
    """Sections of a unit file, each a list of (key, value) in order (keys may repeat)."""
    unit: Unit = {}
    section: list[tuple[str, str]] | None = None
    for raw in file.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), f"{file.name}: keep each setting on one line"
        if line.startswith("["):
            section = unit.setdefault(line.strip("[]"), [])
            continue
        assert section is not None, line
        key, sep, value = line.partition("=")
        assert sep, line
        section.append((key.strip(), value.strip()))
    return unit


def values(unit: Unit, section: str, key: str) -> list[str]:
    return [v for k, v in unit[section] if k == key]


def value(unit: Unit, section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"[{section}] {key}: {found}"
    return found[0]


def runnable_copy(unit_file: Path, folder: Path, name: str) -> Path:
    """The unit as `name` in `folder`, starting this environment's taktline."""
    taktline = Path(sys.executable).parent / "taktline"
    assert taktline.exists(), taktline
    text = unit_file.read_text(encoding="utf-8")
    assert text.count(f"ExecStart={INSTALLED} ") == 1
    copy = folder / name
    copy.write_text(text.replace(f"ExecStart={INSTALLED} ", f"ExecStart={taktline} "))
    return copy


UNITS = [
    (UNIT, "taktline-edge.service"),
    (TEMPLATE, "taktline-edge@.service"),
    (TEMPLATE, "taktline-edge@fa1.service"),
]


@pytest.mark.parametrize(("unit_file", "name"), UNITS, ids=[n for _, n in UNITS])
def test_systemd_analyze_verify_has_nothing_to_say(
    unit_file: Path, name: str, tmp_path: Path
) -> None:
    analyze = require_binary("systemd-analyze", "systemd")
    copy = runnable_copy(unit_file, tmp_path, name)
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_systemd_analyze_verify_would_report_a_mistake(tmp_path: Path) -> None:
    analyze = require_binary("systemd-analyze", "systemd")
    copy = runnable_copy(UNIT, tmp_path, "taktline-edge.service")
    copy.write_text(copy.read_text().replace("ProtectHome=yes", "ProtectHomes=yes"))
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Unknown key 'ProtectHomes'" in done.stderr


@pytest.mark.parametrize(("unit_file", "name"), UNITS[::2], ids=[n for _, n in UNITS[::2]])
def test_hardening_rated_ok_by_systemd_analyze_security(
    unit_file: Path, name: str, tmp_path: Path
) -> None:
    analyze = require_binary("systemd-analyze", "systemd")
    copy = runnable_copy(unit_file, tmp_path, name)
    done = subprocess.run(
        [analyze, "security", "--offline=true", "--threshold=20", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:]  # overall exposure at most 2.0 of 10
    assert "OK" in done.stdout.splitlines()[-1]


@pytest.mark.parametrize("unit_file", [UNIT, TEMPLATE], ids=lambda f: f.name)
def test_restart_state_user_hardening_and_logging(unit_file: Path) -> None:
    unit = parse_unit(unit_file)
    assert value(unit, "Unit", "StartLimitIntervalSec") == "0"
    service = {k: v for k, v in unit["Service"] if k not in ("LoadCredential", "SystemCallFilter")}
    assert service["Restart"] == "on-failure"
    assert service["RestartSec"] == "5s"
    assert service["DynamicUser"] == "yes"
    assert service["StateDirectory"].startswith("taktline-edge")
    assert service["StateDirectoryMode"] == "0700"
    expected = {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "RestrictSUIDSGID": "yes",
        "SystemCallArchitectures": "native",
        "StandardOutput": "journal",
        "StandardError": "journal",
        "KillSignal": "SIGINT",
        "UMask": "0077",
    }
    assert {key: service.get(key) for key in expected} == expected
    assert values(unit, "Service", "SystemCallFilter") == [
        "@system-service",
        "~@privileged @resources",
    ]
    assert value(unit, "Install", "WantedBy") == "multi-user.target"


def test_a_config_error_is_not_restarted_in_a_loop(tmp_path: Path) -> None:
    """RestartPreventExitStatus=2: the CLI exits 2 on a configuration error."""
    for unit_file in (UNIT, TEMPLATE):
        assert value(parse_unit(unit_file), "Service", "RestartPreventExitStatus") == "2"
    bad = tmp_path / "edge.yaml"
    bad.write_text("plant: plant.yaml\nedge_id: Not A Slug\n")
    assert main(["edge", "--config", str(bad)]) == 2


def test_the_template_gives_each_instance_its_own_files() -> None:
    unit = parse_unit(TEMPLATE)
    assert value(unit, "Service", "ExecStart") == (
        f"{INSTALLED} edge --config /etc/taktline/edge-%i.yaml"
    )
    assert value(unit, "Service", "StateDirectory") == "taktline-edge-%i"
    assert value(unit, "Service", "SyslogIdentifier") == "taktline-edge-%i"
    user = value(unit, "Service", "User")
    assert user == "taktline-edge-%i"
    assert len(user.replace("%i", "x" * 17)) <= 31, "user names are at most 31 characters"
    single = parse_unit(UNIT)
    assert [k for k, _ in unit["Service"]] == [k for k, _ in single["Service"]]


def credential_ids(unit: Unit) -> set[str]:
    ids = set()
    for entry in values(unit, "Service", "LoadCredential"):
        credential, _, source = entry.partition(":")
        assert source.startswith("/etc/credstore/"), entry
        ids.add(credential)
    return ids


def secret_refs(node: object) -> list[SecretRef]:
    """Every SecretRef in a settings tree."""
    if isinstance(node, SecretRef):
        return [node]
    fields = getattr(type(node), "model_fields", None)
    if fields is not None:
        return [ref for name in fields for ref in secret_refs(getattr(node, name))]
    if isinstance(node, list | tuple):
        return [ref for item in node for ref in secret_refs(item)]
    return []


def test_example_edge_file_reads_the_unit_credentials(tmp_path: Path) -> None:
    """deploy/systemd/edge.yaml, installed as /etc/taktline/edge.yaml next to a plant file."""
    unit = parse_unit(UNIT)
    etc = tmp_path / "etc" / "taktline"
    etc.mkdir(parents=True)
    shutil.copyfile(EXAMPLE_EDGE, etc / "edge.yaml")
    shutil.copyfile(STACK_PLANT, etc / "plant.yaml")
    assert (
        value(unit, "Service", "ExecStart") == f"{INSTALLED} edge --config /etc/taktline/edge.yaml"
    )
    assert value(unit, "Service", "ConfigurationDirectory") == "taktline"

    settings = load_edge_config(etc / "edge.yaml").settings
    state = value(unit, "Service", "StateDirectory")
    assert str(settings.state_dir) == f"/var/lib/{state}"
    refs = secret_refs(settings)
    assert len(refs) == 2
    credentials = Path("/run/credentials/taktline-edge.service")
    assert {ref.file for ref in refs} == {credentials / c for c in credential_ids(unit)}
    assert all(ref.env is None for ref in refs)
