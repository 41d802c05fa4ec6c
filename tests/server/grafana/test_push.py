"""`taktline grafana push` against the Grafana contract server (Grafana cannot run here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from dashboards.build import GENERATED
from server.grafana.client import grafana_api
from server.grafana.push import PushConfigError, PushReport, push
from taktline.cli import main
from taktline.config.settings import GrafanaSettings, InfluxV1, InfluxV2, ServerSettings
from taktline.localbroker import free_port
from taktline.model import SecretRef
from tests.conftest import EXAMPLE_PLANT
from tests.fixtures.grafana_contract import GrafanaContractServer
from tests.server.grafana.conftest import GRAFANA_TOKEN

INFLUX_PASSWORD = "influx-pw-93c1"


@pytest.fixture
def dashboards(tmp_path: Path) -> Path:
    """A copy of every committed dashboard JSON, free to change."""
    folder = tmp_path / "dashboards"
    folder.mkdir()
    for file in GENERATED.glob("*.json"):
        shutil.copy(file, folder / file.name)
    return folder


def uids(folder: Path) -> list[str]:
    """The dashboard uids of a folder, in push order (by file name)."""
    return [json.loads(f.read_text())["uid"] for f in sorted(folder.glob("*.json"))]


def secret_file(tmp_path: Path, name: str, value: str) -> SecretRef:
    file = tmp_path / name
    file.write_text(value + "\n", encoding="utf-8")
    return SecretRef(file=file)


@pytest.fixture
def settings(grafana: GrafanaContractServer, tmp_path: Path) -> ServerSettings:
    return ServerSettings(
        plant=EXAMPLE_PLANT,
        influxdb=InfluxV1(
            api="v1",
            url="http://influxdb:8086",
            database="taktline",
            username="grafana",
            password=secret_file(tmp_path, "influx-password", INFLUX_PASSWORD),
        ),
        grafana=GrafanaSettings(
            url=grafana.url, token=secret_file(tmp_path, "grafana-token", GRAFANA_TOKEN)
        ),
    )


async def pushed(
    settings: ServerSettings, folder: Path, **options: bool
) -> tuple[PushReport, list[str]]:
    lines: list[str] = []
    report = await push(settings, folder, out=lines.append, **options)
    return report, lines


async def test_the_first_push_creates_datasource_folder_and_every_dashboard(
    grafana: GrafanaContractServer, settings: ServerSettings, dashboards: Path
) -> None:
    report, lines = await pushed(settings, dashboards)

    total = 2 + len(uids(dashboards))
    assert report.ok
    assert [o.result for o in report.outcomes] == ["created"] * total
    assert lines[0] == f"[1/{total}] datasource taktline-influxdb: created"
    assert lines[1] == f"[2/{total}] folder taktline (taktline): created"
    overview = json.loads((dashboards / "plant-overview.json").read_text())
    assert f"dashboard taktline-overview ({overview['title']}): created" in "\n".join(lines)
    assert lines[-1] == f"Grafana {grafana.url}: {total} created, 0 unchanged, 0 failed"

    datasource = grafana.state.datasources["taktline-influxdb"]
    assert (datasource["type"], datasource["access"], datasource["url"], datasource["user"]) == (
        "influxdb",
        "proxy",
        "http://influxdb:8086",
        "grafana",
    )
    assert datasource["jsonData"] == {
        "version": "InfluxQL",
        "httpMode": "POST",
        "dbName": "taktline",
    }
    assert datasource["secrets"] == {"password": INFLUX_PASSWORD}
    assert grafana.state.folders["taktline"]["title"] == "taktline"
    assert sorted(grafana.state.dashboards) == sorted(uids(dashboards))
    stored = grafana.state.dashboards["taktline-overview"]
    assert stored["folderUid"] == "taktline"
    assert {k: v for k, v in stored["dashboard"].items() if k not in ("id", "version")} == overview


async def test_a_second_push_writes_nothing(
    grafana: GrafanaContractServer, settings: ServerSettings, dashboards: Path
) -> None:
    await pushed(settings, dashboards)
    before = len(grafana.requests)

    report, lines = await pushed(settings, dashboards)

    assert report.ok
    assert {o.result for o in report.outcomes} == {"unchanged"}
    assert [r for r in grafana.requests[before:] if r.is_write] == []
    assert len(grafana.requests) > before
    assert lines[-1].endswith(f"{len(report.outcomes)} unchanged, 0 failed")


async def test_a_changed_dashboard_is_updated_and_only_it(
    grafana: GrafanaContractServer, settings: ServerSettings, dashboards: Path
) -> None:
    await pushed(settings, dashboards)
    file = dashboards / "line-detail.json"
    changed = json.loads(file.read_text())
    changed["refresh"] = "5m"
    file.write_text(json.dumps(changed))
    before = len(grafana.requests)

    report, lines = await pushed(settings, dashboards)

    writes = [r for r in grafana.requests[before:] if r.is_write]
    assert [(w.method, w.path, w.body["dashboard"]["uid"]) for w in writes] == [
        ("POST", "/api/dashboards/db", "taktline-line")
    ]
    assert writes[0].body["overwrite"] is False
    assert f"dashboard taktline-line ({changed['title']}): updated" in "\n".join(lines)
    assert sum(o.result == "updated" for o in report.outcomes) == 1
    stored = grafana.state.dashboards["taktline-line"]["dashboard"]
    assert (stored["version"], stored["refresh"]) == (2, "5m")


async def test_a_dashboard_changed_in_grafana_is_put_back(
    grafana: GrafanaContractServer, settings: ServerSettings, dashboards: Path
) -> None:
    await pushed(settings, dashboards)
    grafana.state.dashboards["taktline-overview"]["dashboard"]["refresh"] = "10s"

    report, _ = await pushed(settings, dashboards)

    assert [
        o.result for o in report.outcomes if o.label.startswith("dashboard taktline-overview")
    ] == ["updated"]
    assert grafana.state.dashboards["taktline-overview"]["dashboard"]["refresh"] == "1m"


async def test_a_wrong_token_fails_without_showing_it(
    grafana: GrafanaContractServer, settings: ServerSettings, dashboards: Path, tmp_path: Path
) -> None:
    wrong = "glsa_wrong-token-0c7e"
    assert settings.grafana is not None
    grafana_settings = settings.grafana.model_copy(
        update={"token": secret_file(tmp_path, "wrong-token", wrong)}
    )
    settings = settings.model_copy(update={"grafana": grafana_settings})

    report, lines = await pushed(settings, dashboards)

    assert not report.ok
    assert report.outcomes[0].result == "failed"
    assert "401" in lines[0]
    assert {o.result for o in report.outcomes[1:]} == {"not tried"}
    assert any(line.startswith("stopped: Grafana refused the token") for line in lines)
    text = "\n".join(lines + [o.detail for o in report.outcomes])
    assert wrong not in text
    assert GRAFANA_TOKEN not in text
    assert grafana.writes() == []


async def test_a_failed_dashboard_is_reported_and_the_rest_pushed(
    grafana: GrafanaContractServer, settings: ServerSettings, dashboards: Path
) -> None:
    await pushed(settings, dashboards)
    overview = json.loads((dashboards / "plant-overview.json").read_text())
    imported = grafana.state.dashboards.pop("taktline-overview")  # same title, another uid
    imported["dashboard"]["uid"] = "someone-else"
    grafana.state.dashboards["someone-else"] = imported
    (dashboards / "broken.json").write_text('{"title": "no uid"}')

    report, lines = await pushed(settings, dashboards)

    failed = {o.label: o.detail for o in report.outcomes if o.result == "failed"}
    assert failed[f"dashboard taktline-overview ({overview['title']})"].endswith(
        "A dashboard with the same name in the folder already exists (name-exists)"
    )
    assert "has no `uid`" in failed["dashboard broken.json"]
    assert len(failed) == 2
    assert not report.ok
    assert lines[-1].endswith("2 failed")
    assert "unchanged" in {o.result for o in report.outcomes}


async def test_a_changed_datasource_is_updated_and_secrets_only_on_request(
    grafana: GrafanaContractServer, settings: ServerSettings, dashboards: Path, tmp_path: Path
) -> None:
    await pushed(settings, dashboards)
    assert settings.influxdb is not None and settings.grafana is not None
    rotated = settings.influxdb.model_copy(
        update={"password": secret_file(tmp_path, "rotated", "rotated-pw")}
    )
    settings = settings.model_copy(update={"influxdb": rotated})

    report, _ = await pushed(settings, dashboards)
    assert report.outcomes[0].result == "unchanged"
    assert grafana.state.datasources["taktline-influxdb"]["secrets"]["password"] == INFLUX_PASSWORD

    report, _ = await pushed(settings, dashboards, update_secrets=True)
    assert report.outcomes[0].result == "updated"
    assert grafana.state.datasources["taktline-influxdb"]["secrets"]["password"] == "rotated-pw"

    moved = settings.grafana.model_copy(update={"datasource_url": "http://influx.plant:8086"})
    report, _ = await pushed(settings.model_copy(update={"grafana": moved}), dashboards)
    stored = grafana.state.datasources["taktline-influxdb"]
    assert report.outcomes[0].result == "updated"
    assert (stored["url"], stored["version"]) == ("http://influx.plant:8086", 3)


async def test_influxdb_2_is_queried_with_influxql_and_a_token_header(
    grafana: GrafanaContractServer, settings: ServerSettings, dashboards: Path, tmp_path: Path
) -> None:
    v2 = InfluxV2(
        api="v2",
        url="http://influxdb:8086",
        org="plant",
        bucket="production",
        token=secret_file(tmp_path, "influx-token", "v2-token-abc"),
    )
    await pushed(settings.model_copy(update={"influxdb": v2}), dashboards)

    stored = grafana.state.datasources["taktline-influxdb"]
    assert stored["jsonData"] == {
        "version": "InfluxQL",
        "httpMode": "POST",
        "dbName": "production",
        "httpHeaderName1": "Authorization",
    }
    assert stored["secrets"] == {"httpHeaderValue1": "Token v2-token-abc"}


async def test_provisioned_items_are_left_alone(
    grafana: GrafanaContractServer, settings: ServerSettings, dashboards: Path
) -> None:
    await pushed(settings, dashboards)
    grafana.state.datasources["taktline-influxdb"]["readOnly"] = True
    grafana.state.datasources["taktline-influxdb"]["url"] = "http://provisioned:8086"
    grafana.state.dashboards["taktline-line"]["provisioned"] = True
    grafana.state.dashboards["taktline-line"]["dashboard"]["refresh"] = "5m"
    before = len(grafana.requests)

    report, lines = await pushed(settings, dashboards)

    assert report.ok
    assert lines[0].endswith(
        "datasource taktline-influxdb: skipped: provisioned from files (read-only in Grafana)"
    )
    assert [r for r in grafana.requests[before:] if r.is_write] == []


async def test_a_renamed_folder_is_updated(
    grafana: GrafanaContractServer, settings: ServerSettings, dashboards: Path
) -> None:
    await pushed(settings, dashboards)
    assert settings.grafana is not None
    renamed = settings.grafana.model_copy(update={"folder_title": "Production"})

    report, lines = await pushed(settings.model_copy(update={"grafana": renamed}), dashboards)

    assert lines[1].endswith("folder taktline (Production): updated")
    assert grafana.state.folders["taktline"]["title"] == "Production"
    assert report.ok


async def test_without_influxdb_the_datasource_is_skipped(
    grafana: GrafanaContractServer, settings: ServerSettings, dashboards: Path
) -> None:
    report, lines = await pushed(settings.model_copy(update={"influxdb": None}), dashboards)
    assert report.ok
    assert lines[0].endswith("skipped: the server file has no influxdb section")
    assert grafana.state.datasources == {}


async def test_what_stops_a_push_before_any_call(
    grafana: GrafanaContractServer, settings: ServerSettings, tmp_path: Path, dashboards: Path
) -> None:
    with pytest.raises(PushConfigError, match="no `grafana` section"):
        await push(settings.model_copy(update={"grafana": None}), dashboards)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PushConfigError, match="no dashboard JSON"):
        await push(settings, empty)
    with pytest.raises(PushConfigError, match="is not a folder"):
        await push(settings, tmp_path / "missing")
    assert settings.grafana is not None
    unreadable = settings.grafana.model_copy(
        update={"token": SecretRef(env="TAKTLINE_NO_SUCH_VAR")}
    )
    with pytest.raises(PushConfigError, match="TAKTLINE_NO_SUCH_VAR is not set"):
        await push(settings.model_copy(update={"grafana": unreadable}), dashboards)
    assert grafana.requests == []


def write_server_file(folder: Path, grafana_url: str, token_file: Path) -> Path:
    file = folder / "server.yaml"
    file.write_text(
        f"plant: {EXAMPLE_PLANT}\n"
        "influxdb: {api: v1, url: 'http://influxdb:8086', database: taktline}\n"
        f"grafana:\n  url: {grafana_url}\n  token: {{file: {token_file.name}}}\n"
        "  folder_uid: plant\n  folder_title: Plant\n",
        encoding="utf-8",
    )
    return file


def test_the_cli_pushes_with_progress_and_exit_codes(
    grafana: GrafanaContractServer,
    dashboards: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "token").write_text(GRAFANA_TOKEN)
    server_file = write_server_file(tmp_path, grafana.url, tmp_path / "token")
    argv = ["grafana", "push", "--config", str(server_file), "--dashboards", str(dashboards)]
    total = 2 + len(uids(dashboards))

    assert main(argv) == 0
    first = capsys.readouterr().out.splitlines()
    assert first[:2] == [
        f"[1/{total}] datasource taktline-influxdb: created",
        f"[2/{total}] folder plant (Plant): created",
    ]
    assert len(first) == total + 1
    assert grafana.state.dashboards["taktline-milestones"]["folderUid"] == "plant"

    assert main(argv) == 0
    second = capsys.readouterr().out.splitlines()
    assert all(line.endswith(": unchanged") for line in second[:-1])

    (dashboards / "broken.json").write_text("{")
    assert main(argv) == 1
    assert "dashboard broken.json: failed: cannot read" in capsys.readouterr().out

    no_grafana = tmp_path / "no-grafana.yaml"
    no_grafana.write_text(f"plant: {EXAMPLE_PLANT}\n", encoding="utf-8")
    assert main(["grafana", "push", "--config", str(no_grafana)]) == 2
    assert "no `grafana` section" in capsys.readouterr().err


def test_the_cli_explains_itself(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["grafana", "push", "--help"])
    assert exited.value.code == 0
    help_text = capsys.readouterr().out
    assert "--dashboards" in help_text
    assert "--update-secrets" in help_text


async def test_an_unreachable_grafana_stops_the_push(
    settings: ServerSettings, dashboards: Path
) -> None:
    assert settings.grafana is not None
    nowhere = settings.grafana.model_copy(update={"url": f"http://127.0.0.1:{free_port()}"})

    report, lines = await pushed(settings.model_copy(update={"grafana": nowhere}), dashboards)

    assert not report.ok
    assert "cannot reach Grafana: [Errno 111]" in lines[0]
    not_tried = 1 + len(uids(dashboards))
    assert lines[1] == f"stopped: Grafana cannot be reached; {not_tried} item(s) not tried"
    assert {o.result for o in report.outcomes[1:]} == {"not tried"}


# --- the client underneath -----------------------------------------------------------------


def test_the_api_url_keeps_a_sub_path_and_tls_settings(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    settings = GrafanaSettings(
        url="https://grafana.plant:8443/grafana/",
        token=secret_file(tmp_path, "token", GRAFANA_TOKEN),
        tls_ca_file=ca,
        timeout_s=3,
    )
    client = grafana_api(settings).client
    assert (client.url, client.verify, client.timeout) == (
        "https://grafana.plant:8443/grafana/api",
        str(ca),
        3,
    )


def test_grafana_settings_refuse_credentials_in_the_url(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="url"):
        GrafanaSettings(
            url="http://admin:admin@grafana:3000",
            token=secret_file(tmp_path, "token", GRAFANA_TOKEN),
        )
