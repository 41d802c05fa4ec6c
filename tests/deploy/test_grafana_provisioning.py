"""deploy/grafana/: the provisioning files against Grafana's provisioning format (v1), the
generated dashboards, and a real influxd.

Grafana cannot run here. Grafana ignores keys it does not know, so a typo in a provisioning file
fails silently in the plant; these tests hold every key to the lists of Grafana's documented
provisioning format (apiVersion 1) instead.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from dashboards.build import GENERATED
from dashboards.datasource import DATASOURCE_TYPE, DATASOURCE_UID
from taktline.config.settings import GrafanaSettings
from tests.fixtures.services import InfluxService

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DATASOURCE_FILES = sorted((GRAFANA / "datasources").glob("*.yaml")) + sorted(
    (GRAFANA / "provisioning" / "datasources").glob("*.yaml")
)
PROVIDER_FILE = GRAFANA / "provisioning" / "dashboards" / "taktline.yaml"

DATASOURCE_KEYS = {
    "name", "type", "access", "orgId", "uid", "url", "user", "database", "basicAuth",
    "basicAuthUser", "withCredentials", "isDefault", "jsonData", "secureJsonData", "version",
    "editable",
}  # fmt: skip
"""Keys of a datasource in Grafana's provisioning format (apiVersion 1)."""

INFLUXDB_JSON_DATA = {
    "version", "dbName", "httpMode", "timeInterval", "tlsSkipVerify", "tlsAuth",
    "tlsAuthWithCACert", "httpHeaderName1",
}  # fmt: skip
"""jsonData keys of Grafana's InfluxDB datasource used for InfluxQL."""

PROVIDER_KEYS = {
    "name", "orgId", "type", "folder", "folderUid", "disableDeletion", "allowUiUpdates",
    "updateIntervalSeconds", "options",
}  # fmt: skip
"""Keys of a dashboard provider in Grafana's provisioning format (apiVersion 1)."""

ENV_REFERENCE = re.compile(r"\$\{([A-Z0-9_]+)\}|\$([A-Z0-9_]+)")
"""Grafana expands $VAR and ${VAR} in provisioning files from its environment."""


def load(file: Path) -> dict[str, Any]:
    document = yaml.safe_load(file.read_text(encoding="utf-8"))
    assert isinstance(document, dict), file
    return document


def expand(value: str, environment: dict[str, str]) -> str:
    """What Grafana makes of a provisioning value in this environment."""
    return ENV_REFERENCE.sub(lambda m: environment[m.group(1) or m.group(2)], value)


@pytest.mark.parametrize("file", DATASOURCE_FILES, ids=lambda file: file.name)
def test_each_datasource_file_provisions_the_datasource_the_dashboards_reference(
    file: Path,
) -> None:
    document = load(file)
    assert document["apiVersion"] == 1
    (datasource,) = document["datasources"]
    assert set(datasource) <= DATASOURCE_KEYS, set(datasource) - DATASOURCE_KEYS
    assert set(datasource["jsonData"]) <= INFLUXDB_JSON_DATA
    assert datasource["uid"] == DATASOURCE_UID
    assert datasource["type"] == DATASOURCE_TYPE
    assert datasource["access"] == "proxy"
    assert datasource["jsonData"]["version"] == "InfluxQL"
    assert ENV_REFERENCE.fullmatch(datasource["jsonData"]["dbName"])


@pytest.mark.parametrize("file", DATASOURCE_FILES, ids=lambda file: file.name)
def test_secrets_come_from_grafanas_environment_and_are_documented(file: Path) -> None:
    secure = load(file)["datasources"][0].get("secureJsonData", {})
    assert secure, "a datasource without a password or token"
    readme = (GRAFANA / "README.md").read_text(encoding="utf-8")
    for value in secure.values():
        names = [a or b for a, b in ENV_REFERENCE.findall(value)]
        assert names, f"{file.name}: a literal secret: {value!r}"
        for name in names:
            assert f"`{name}`" in readme, f"{name} is not documented in deploy/grafana/README.md"


def test_the_provisioned_file_is_the_influxdb_1_variant() -> None:
    provisioned = GRAFANA / "provisioning" / "datasources" / "taktline-influxdb.yaml"
    assert load(provisioned) == load(GRAFANA / "datasources" / "influxdb-1.yaml")


def test_the_dashboard_provider_loads_the_generated_dashboards_into_pushs_folder() -> None:
    document = load(PROVIDER_FILE)
    assert document["apiVersion"] == 1
    (provider,) = document["providers"]
    assert set(provider) <= PROVIDER_KEYS, set(provider) - PROVIDER_KEYS
    assert provider["type"] == "file"
    assert set(provider["options"]) <= {"path", "foldersFromFilesStructure"}
    assert Path(provider["options"]["path"]).is_absolute()
    assert provider["folderUid"] == GrafanaSettings.model_fields["folder_uid"].default


def test_every_generated_panel_queries_the_provisioned_datasource() -> None:
    files = sorted(GENERATED.glob("*.json"))
    assert files
    seen: set[str] = set()
    for file in files:
        text = file.read_text(encoding="utf-8")
        for reference in _datasource_references(json.loads(text)):
            if reference.get("type") == DATASOURCE_TYPE:
                seen.add(reference["uid"])
    assert seen == {DATASOURCE_UID}


def _datasource_references(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        reference = node.get("datasource")
        if isinstance(reference, dict) and "uid" in reference:
            found.append(reference)
        for value in node.values():
            found += _datasource_references(value)
    elif isinstance(node, list):
        for value in node:
            found += _datasource_references(value)
    return found


def test_the_influxdb_1_datasource_reaches_a_real_influxd(influxd: InfluxService) -> None:
    """Expand the provisioned file as Grafana would, then query as Grafana's InfluxQL datasource
    does with httpMode POST: form field q, query parameters db, u and p, epoch ms."""
    influxd.create_database("grafana_provisioning")
    httpx.post(
        f"{influxd.url}/write",
        params={"db": "grafana_provisioning"},
        content=b"production,site=s,line=l total=7i,delta=1i,raw=7i 1700000000000000000",
        timeout=10,
    ).raise_for_status()
    environment = {
        "TAKTLINE_INFLUX_URL": influxd.url,
        "TAKTLINE_INFLUX_DB": "grafana_provisioning",
        "TAKTLINE_INFLUX_USER": "grafana",
        "TAKTLINE_INFLUX_PASSWORD": "unused-without-auth",
    }
    datasource = load(GRAFANA / "provisioning" / "datasources" / "taktline-influxdb.yaml")
    (source,) = datasource["datasources"]
    assert source["jsonData"]["httpMode"] == "POST"
    response = httpx.post(
        f"{expand(source['url'], environment)}/query",
        params={
            "db": expand(source["jsonData"]["dbName"], environment),
            "u": expand(source["user"], environment),
            "p": expand(source["secureJsonData"]["password"], environment),
            "epoch": "ms",
        },
        data={"q": 'SELECT last("total") FROM "production"'},
        timeout=10,
    )
    response.raise_for_status()
    (series,) = response.json()["results"][0]["series"]
    assert series["values"] == [[1700000000000, 7]]
