"""The Grafana contract server rejects what Grafana rejects, with Grafana's status codes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fixtures.grafana_contract import GrafanaContractServer
from tests.server.grafana.conftest import GRAFANA_TOKEN

AUTH = {"Authorization": f"Bearer {GRAFANA_TOKEN}"}
INFLUX = {"name": "InfluxDB", "uid": "influx", "type": "influxdb", "access": "proxy"}


def call(
    grafana: GrafanaContractServer,
    method: str,
    path: str,
    json: Any = None,
    params: Any = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.request(
        method,
        grafana.url + path,
        json=json,
        params=params,
        headers=AUTH if headers is None else headers,
        timeout=10,
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/annotations"),
        ("POST", "/api/annotations"),
        ("GET", "/api/datasources/uid/influx"),
        ("POST", "/api/dashboards/db"),
        ("POST", "/api/folders"),
    ],
)
def test_every_api_path_wants_the_bearer_token(
    grafana: GrafanaContractServer, method: str, path: str
) -> None:
    missing = call(grafana, method, path, json={}, headers={})
    wrong = call(grafana, method, path, json={}, headers={"Authorization": "Bearer nope"})
    basic = call(
        grafana, method, path, json={}, headers={"Authorization": "Basic YWRtaW46YWRtaW4="}
    )
    assert [missing.status_code, wrong.status_code, basic.status_code] == [401, 401, 401]
    assert "message" in missing.json()
    assert grafana.state.annotations == {}
    assert grafana.state.folders == {}


def test_health_answers_without_a_token(grafana: GrafanaContractServer) -> None:
    assert call(grafana, "GET", "/api/health", headers={}).json()["database"] == "ok"


# --- annotations -------------------------------------------------------------------------


def test_an_annotation_needs_text(grafana: GrafanaContractServer) -> None:
    assert call(grafana, "POST", "/api/annotations", json={"tags": ["x"]}).status_code == 400
    assert call(grafana, "POST", "/api/annotations", json={"text": ""}).status_code == 400
    assert call(grafana, "POST", "/api/annotations", json=["text"]).status_code == 400
    assert grafana.state.annotations == {}


def test_annotation_time_end_defaults_to_its_time(grafana: GrafanaContractServer) -> None:
    added = call(grafana, "POST", "/api/annotations", json={"text": "30M", "time": 1000})
    assert added.json() == {"message": "Annotation added", "id": 1}
    [found] = call(grafana, "GET", "/api/annotations").json()
    assert (found["id"], found["time"], found["timeEnd"], found["text"]) == (1, 1000, 1000, "30M")
    assert found["dashboardUID"] is None


def test_annotation_tags_match_all_unless_match_any(grafana: GrafanaContractServer) -> None:
    for text, tags in [("a", ["milestone", "fa1"]), ("b", ["milestone"]), ("c", ["fa1"])]:
        call(grafana, "POST", "/api/annotations", json={"text": text, "tags": tags})

    def texts(**params: Any) -> list[str]:
        found = call(grafana, "GET", "/api/annotations", params=params).json()
        return sorted(a["text"] for a in found)

    assert texts(tags=["milestone", "fa1"]) == ["a"]
    assert texts(tags=["milestone", "fa1"], matchAny="true") == ["a", "b", "c"]
    assert texts(tags=["milestone"]) == ["a", "b"]


def test_annotations_filter_by_time_overlap_newest_first_limited(
    grafana: GrafanaContractServer,
) -> None:
    for start in (1000, 2000, 3000, 4000):
        call(grafana, "POST", "/api/annotations", json={"text": str(start), "time": start})
    call(grafana, "POST", "/api/annotations", json={"text": "region", "time": 500, "timeEnd": 2500})
    found = call(grafana, "GET", "/api/annotations", params={"from": 2100, "to": 3500}).json()
    assert [a["text"] for a in found] == ["3000", "region"]
    limited = call(grafana, "GET", "/api/annotations", params={"limit": 2}).json()
    assert [a["text"] for a in limited] == ["4000", "3000"]


def test_annotations_by_dashboard_uid(grafana: GrafanaContractServer) -> None:
    call(grafana, "POST", "/api/dashboards/db", json={"dashboard": {"uid": "d1", "title": "D"}})
    call(grafana, "POST", "/api/annotations", json={"text": "on d1", "dashboardUID": "d1"})
    call(grafana, "POST", "/api/annotations", json={"text": "org"})
    found = call(grafana, "GET", "/api/annotations", params={"dashboardUID": "d1"}).json()
    assert [(a["text"], a["dashboardUID"]) for a in found] == [("on d1", "d1")]
    unknown = call(grafana, "GET", "/api/annotations", params={"dashboardUID": "nope"})
    assert unknown.status_code == 400


def test_deleting_an_annotation_that_does_not_exist_is_404(grafana: GrafanaContractServer) -> None:
    call(grafana, "POST", "/api/annotations", json={"text": "x"})
    assert call(grafana, "DELETE", "/api/annotations/1").status_code == 200
    assert call(grafana, "DELETE", "/api/annotations/1").status_code == 404
    assert call(grafana, "GET", "/api/annotations").json() == []


# --- datasources -------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["name", "type", "access"])
def test_a_datasource_needs_name_type_and_access(
    grafana: GrafanaContractServer, missing: str
) -> None:
    body = {k: v for k, v in INFLUX.items() if k != missing}
    assert call(grafana, "POST", "/api/datasources", json=body).status_code == 400
    assert grafana.state.datasources == {}


def test_a_duplicate_datasource_is_409(grafana: GrafanaContractServer) -> None:
    assert call(grafana, "POST", "/api/datasources", json=INFLUX).status_code == 200
    same_name = call(grafana, "POST", "/api/datasources", json={**INFLUX, "uid": "other"})
    same_uid = call(grafana, "POST", "/api/datasources", json={**INFLUX, "name": "Other"})
    assert (same_name.status_code, same_uid.status_code) == (409, 409)
    assert "same name" in same_name.json()["message"]
    assert "same uid" in same_uid.json()["message"]


def test_datasource_secrets_are_never_returned_and_kept_on_update(
    grafana: GrafanaContractServer,
) -> None:
    body = {**INFLUX, "secureJsonData": {"password": "s3cret"}}
    created = call(grafana, "POST", "/api/datasources", json=body).json()
    assert created["datasource"]["version"] == 1
    updated = call(
        grafana, "PUT", "/api/datasources/uid/influx", json={**INFLUX, "url": "http://x"}
    )
    assert updated.json()["datasource"]["version"] == 2
    got = call(grafana, "GET", "/api/datasources/uid/influx")
    assert "s3cret" not in got.text
    assert got.json()["secureJsonFields"] == {"password": True}
    assert got.json()["url"] == "http://x"
    assert grafana.state.datasources["influx"]["secrets"] == {"password": "s3cret"}


def test_a_read_only_datasource_is_not_updated(grafana: GrafanaContractServer) -> None:
    call(grafana, "POST", "/api/datasources", json=INFLUX)
    grafana.state.datasources["influx"]["readOnly"] = True  # as provisioned from files
    refused = call(grafana, "PUT", "/api/datasources/uid/influx", json={**INFLUX, "url": "x"})
    assert refused.status_code == 403
    assert grafana.state.datasources["influx"]["url"] == ""


def test_an_unknown_datasource_is_404(grafana: GrafanaContractServer) -> None:
    assert call(grafana, "GET", "/api/datasources/uid/influx").status_code == 404
    assert call(grafana, "PUT", "/api/datasources/uid/influx", json=INFLUX).status_code == 404


# --- folders -------------------------------------------------------------------------------


def test_folders_need_a_title_and_a_new_uid(grafana: GrafanaContractServer) -> None:
    assert call(grafana, "POST", "/api/folders", json={"uid": "f"}).status_code == 400
    assert call(grafana, "POST", "/api/folders", json={"uid": "f", "title": "F"}).status_code == 200
    again = call(grafana, "POST", "/api/folders", json={"uid": "f", "title": "G"})
    assert again.status_code == 409
    assert call(grafana, "GET", "/api/folders/nope").status_code == 404


def test_a_folder_update_checks_the_version_unless_overwrite(
    grafana: GrafanaContractServer,
) -> None:
    call(grafana, "POST", "/api/folders", json={"uid": "f", "title": "F"})
    stale = call(grafana, "PUT", "/api/folders/f", json={"title": "G", "version": 7})
    assert stale.status_code == 412
    ok = call(grafana, "PUT", "/api/folders/f", json={"title": "G", "version": 1})
    assert (ok.status_code, ok.json()["version"]) == (200, 2)
    forced = call(grafana, "PUT", "/api/folders/f", json={"title": "H", "overwrite": True})
    assert forced.json()["title"] == "H"
    assert call(grafana, "PUT", "/api/folders/nope", json={"title": "H"}).status_code == 404


# --- dashboards ----------------------------------------------------------------------------


def save(grafana: GrafanaContractServer, **body: Any) -> httpx.Response:
    return call(grafana, "POST", "/api/dashboards/db", json=body)


def test_a_dashboard_needs_a_title(grafana: GrafanaContractServer) -> None:
    assert save(grafana, dashboard={"uid": "d1"}).status_code == 400
    assert save(grafana, dashboard={"uid": "d1", "title": "  "}).status_code == 400
    assert save(grafana, overwrite=True).status_code == 400
    assert grafana.state.dashboards == {}


def test_a_dashboard_in_an_unknown_folder_is_rejected(grafana: GrafanaContractServer) -> None:
    refused = save(grafana, dashboard={"uid": "d1", "title": "D"}, folderUid="nope")
    assert (refused.status_code, refused.json()["message"]) == (400, "Folder not found")


def test_saving_a_dashboard_returns_grafanas_answer(grafana: GrafanaContractServer) -> None:
    call(grafana, "POST", "/api/folders", json={"uid": "f", "title": "F"})
    saved = save(grafana, dashboard={"uid": "d1", "title": "Plant overview"}, folderUid="f")
    answer = saved.json()
    assert {k: answer[k] for k in ("uid", "status", "version", "slug")} == {
        "uid": "d1",
        "status": "success",
        "version": 1,
        "slug": "plant-overview",
    }
    got = call(grafana, "GET", "/api/dashboards/uid/d1").json()
    assert got["dashboard"]["id"] == answer["id"]
    assert (got["meta"]["folderUid"], got["meta"]["version"]) == ("f", 1)
    assert call(grafana, "GET", "/api/dashboards/uid/nope").status_code == 404


def test_a_stale_dashboard_version_is_412_unless_overwrite(grafana: GrafanaContractServer) -> None:
    save(grafana, dashboard={"uid": "d1", "title": "D"})
    stale = save(grafana, dashboard={"uid": "d1", "title": "D", "version": 0})
    assert (stale.status_code, stale.json()["status"]) == (412, "version-mismatch")
    current = save(grafana, dashboard={"uid": "d1", "title": "D", "version": 1})
    assert current.json()["version"] == 2
    forced = save(grafana, dashboard={"uid": "d1", "title": "D"}, overwrite=True)
    assert forced.json()["version"] == 3


def test_the_same_title_in_a_folder_is_412_name_exists(grafana: GrafanaContractServer) -> None:
    call(grafana, "POST", "/api/folders", json={"uid": "f", "title": "F"})
    save(grafana, dashboard={"uid": "d1", "title": "D"}, folderUid="f")
    clash = save(grafana, dashboard={"uid": "d2", "title": "D"}, folderUid="f")
    assert (clash.status_code, clash.json()["status"]) == (412, "name-exists")
    assert save(grafana, dashboard={"uid": "d2", "title": "D"}).status_code == 200
    replaced = save(grafana, dashboard={"uid": "d3", "title": "D"}, folderUid="f", overwrite=True)
    assert replaced.status_code == 200
    assert "d1" not in grafana.state.dashboards


def test_a_provisioned_dashboard_cannot_be_saved(grafana: GrafanaContractServer) -> None:
    save(grafana, dashboard={"uid": "d1", "title": "D"})
    grafana.state.dashboards["d1"]["provisioned"] = True  # as provisioned from files
    refused = save(grafana, dashboard={"uid": "d1", "title": "E"}, overwrite=True)
    assert (refused.status_code, refused.json()["message"]) == (
        400,
        "Cannot save provisioned dashboard",
    )
    assert call(grafana, "GET", "/api/dashboards/uid/d1").json()["meta"]["provisioned"] is True


def test_every_request_is_recorded(grafana: GrafanaContractServer) -> None:
    call(grafana, "GET", "/api/folders/f")
    call(grafana, "POST", "/api/folders", json={"uid": "f", "title": "F"})
    assert [(r.method, r.path) for r in grafana.requests] == [
        ("GET", "/api/folders/f"),
        ("POST", "/api/folders"),
    ]
    assert [r.body for r in grafana.writes()] == [{"uid": "f", "title": "F"}]
