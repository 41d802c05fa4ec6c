"""Write endpoints against a real server and Mosquitto: token, corrections, acknowledgements,
bad requests and the audit log."""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.app import Server, ServerStartError
from taktline.config import ServerConfig
from taktline.model import SecretRef
from tests.server.conftest import (
    AUTH,
    FA1,
    TOKEN,
    PinnedClock,
    Publish,
    eventually,
    publish_counter,
    publish_status,
)

CORRECTION = {"counter": "eol/passed", "delta": 3, "reason": "counted by hand", "by": "Ana"}


async def fa1_state(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/api/lines/fa1")
    response.raise_for_status()
    state: dict[str, Any] = response.json()
    return state


async def test_without_a_configured_token_writes_are_disabled(
    server_config: ServerConfig, clock: PinnedClock
) -> None:
    async with (
        Server(server_config, clock=clock) as server,
        httpx.AsyncClient(base_url=server.url, timeout=5) as http,
    ):
        correction = await http.post("/api/lines/fa1/corrections", json=CORRECTION, headers=AUTH)
        audit = await http.get("/api/audit", headers=AUTH)
        state = await fa1_state(http)
    for response in (correction, audit):
        assert response.status_code == 403
        assert response.json() == {
            "error": "writes_disabled",
            "message": "writes are disabled: no api_token configured",
        }
    assert (state["shift_count"], state["corrections"]) == (0, 0)


async def test_a_missing_or_wrong_token_is_refused_and_never_logged(
    token_config: ServerConfig, clock: PinnedClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with (
        Server(token_config, clock=clock) as server,
        httpx.AsyncClient(base_url=server.url, timeout=5) as http,
    ):
        missing = await http.post("/api/lines/fa1/corrections", json=CORRECTION)
        wrong = await http.post(
            "/api/lines/fa1/corrections",
            json=CORRECTION,
            headers={"Authorization": f"Bearer {TOKEN}x"},
        )
        basic = await http.get("/api/audit", headers={"Authorization": f"Basic {TOKEN}"})
        accepted = await http.post("/api/lines/fa1/corrections", json=CORRECTION, headers=AUTH)
        state = await fa1_state(http)
    for response in (missing, wrong, basic):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"] == "unauthorized"
    assert accepted.status_code == 201
    assert (state["shift_count"], state["corrections"]) == (3, 3)
    assert TOKEN not in caplog.text
    assert "corrected by +3 by Ana" in caplog.text


async def test_a_correction_changes_the_shift_count_and_is_audited(
    token_config: ServerConfig, clock: PinnedClock, publish: Publish
) -> None:
    async with (
        Server(token_config, clock=clock) as server,
        httpx.AsyncClient(base_url=server.url, timeout=5) as http,
    ):
        await publish_counter(publish, FA1, 16_250_310, 10, clock.now)

        async def counted() -> bool:
            return (await fa1_state(http))["shift_count"] == 10

        await eventually(counted)
        first = await http.post("/api/lines/fa1/corrections", json=CORRECTION, headers=AUTH)
        second = await http.post(
            "/api/lines/fa1/corrections",
            json={**CORRECTION, "delta": -1, "reason": "one was a re-test", "by": "Ben"},
            headers=AUTH,
        )
        state = await fa1_state(http)
        audit = await http.get("/api/audit", params={"limit": 5}, headers=AUTH)
    assert first.status_code == 201 and second.status_code == 201
    body = second.json()
    assert (body["line"], body["counter"], body["delta"], body["shift"]) == (
        "fa1",
        "eol/passed",
        -1,
        "early",
    )
    assert (body["counter_corrections"], body["counter_shift_count"], body["shift_count"]) == (
        2,
        12,
        12,
    )
    assert (state["shift_count"], state["corrections"], state["total"]) == (12, 2, 16_250_310)
    entries = audit.json()
    assert [e["id"] for e in entries] == [body["audit_id"], first.json()["audit_id"]]
    newest = entries[0]
    assert newest["endpoint"] == "POST /api/lines/{line}/corrections"
    assert (newest["line"], newest["by"], newest["client"]) == ("fa1", "Ben", "127.0.0.1")
    assert newest["body"] == {
        "counter": "eol/passed",
        "delta": -1,
        "reason": "one was a re-test",
        "by": "Ben",
    }
    assert dt.datetime.fromisoformat(newest["at"]) == clock.now


@pytest.mark.parametrize(
    ("body", "status", "error", "where"),
    [
        ({**CORRECTION, "delta": "3"}, 422, "invalid_request", "body.delta"),
        ({**CORRECTION, "delta": 2.5}, 422, "invalid_request", "body.delta"),
        ({**CORRECTION, "delta": 0}, 422, "invalid_request", "body.delta"),
        ({**CORRECTION, "delta": 10_001}, 422, "invalid_request", "body.delta"),
        ({**CORRECTION, "reason": ""}, 422, "invalid_request", "body.reason"),
        ({**CORRECTION, "reason": "   "}, 422, "invalid_request", "body.reason"),
        ({**CORRECTION, "reason": "x" * 501}, 422, "invalid_request", "body.reason"),
        ({k: v for k, v in CORRECTION.items() if k != "by"}, 422, "invalid_request", "body.by"),
        ({**CORRECTION, "extra": 1}, 422, "invalid_request", "body.extra"),
        ({**CORRECTION, "counter": "eol/painted"}, 400, "unknown_counter", None),
        ({**CORRECTION, "delta": -1}, 409, "negative_count", None),
    ],
)
async def test_bad_corrections_are_answered_clearly_and_change_nothing(
    token_config: ServerConfig,
    clock: PinnedClock,
    body: dict[str, Any],
    status: int,
    error: str,
    where: str | None,
) -> None:
    async with (
        Server(token_config, clock=clock) as server,
        httpx.AsyncClient(base_url=server.url, timeout=5) as http,
    ):
        response = await http.post("/api/lines/fa1/corrections", json=body, headers=AUTH)
        not_json = await http.post(
            "/api/lines/fa1/corrections",
            content=b"{delta: 3",
            headers={**AUTH, "Content-Type": "application/json"},
        )
        unknown = await http.post("/api/lines/fa9/corrections", json=CORRECTION, headers=AUTH)
        state = await fa1_state(http)
        audit = (await http.get("/api/audit", headers=AUTH)).json()
        health = (await http.get("/healthz")).status_code
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.json()["message"]
    if where is not None:
        assert response.json()["message"].startswith(where)
    assert not_json.status_code == 422 and not_json.json()["error"] == "invalid_request"
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_line"
    assert unknown.json()["known"] == ["fa1", "fa2", "paint1"]
    assert (state["shift_count"], state["corrections"]) == (0, 0)
    assert audit == []
    assert health == 200


async def test_a_stop_is_acknowledged_until_the_line_runs_again(
    token_config: ServerConfig, clock: PinnedClock, publish: Publish
) -> None:
    ack = {"note": "conveyor jam at station 4, maintenance called", "by": "Ana"}
    async with (
        Server(token_config, clock=clock) as server,
        httpx.AsyncClient(base_url=server.url, timeout=5) as http,
    ):
        await publish_counter(publish, FA1, 16_250_401, 1, clock.now)

        async def running() -> bool:
            return (await fa1_state(http))["status"] == "running"

        await eventually(running)
        too_early = await http.post("/api/lines/fa1/acknowledgements", json=ack, headers=AUTH)
        last_unit = clock.now
        clock.advance(minutes=4)  # no unit for four takts while the edge is online
        await publish_status(publish, "edge-final", "online", ["fa1"], clock.now)

        async def stopped() -> bool:
            return (await fa1_state(http))["status"] == "stopped"

        await eventually(stopped)
        accepted = await http.post("/api/lines/fa1/acknowledgements", json=ack, headers=AUTH)
        during = await fa1_state(http)
        await publish_counter(publish, FA1, 16_250_402, 1, clock.now)
        await eventually(running)
        after = await fa1_state(http)
        audit = (await http.get("/api/audit", headers=AUTH)).json()
    assert too_early.status_code == 409 and too_early.json()["error"] == "not_stopped"
    assert accepted.status_code == 201, accepted.text
    assert dt.datetime.fromisoformat(accepted.json()["stopped_since"]) == last_unit
    assert (during["status"], during["acknowledged_by"]) == ("stopped", "Ana")
    assert dt.datetime.fromisoformat(during["acknowledged_at"]) == clock.now
    assert (after["acknowledged_by"], after["acknowledged_at"]) == (None, None)
    assert [(e["endpoint"], e["body"]["note"]) for e in audit] == [
        ("POST /api/lines/{line}/acknowledgements", ack["note"])
    ]


async def test_the_write_endpoints_are_in_the_openapi_with_bearer_security(
    token_config: ServerConfig, clock: PinnedClock
) -> None:
    async with (
        Server(token_config, clock=clock) as server,
        httpx.AsyncClient(base_url=server.url, timeout=5) as http,
    ):
        openapi = (await http.get("/openapi.json")).json()
    paths = openapi["paths"]
    for path in ("/api/lines/{line}/corrections", "/api/lines/{line}/acknowledgements"):
        assert paths[path]["post"]["security"] == [{"HTTPBearer": []}]
    assert paths["/api/audit"]["get"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in paths["/api/lines/{line}/shifts"]["get"]
    schema = openapi["components"]["schemas"]["CorrectionRequest"]
    assert set(schema["required"]) == {"counter", "delta", "reason", "by"}


async def test_a_correction_the_store_cannot_keep_is_taken_back(
    token_config: ServerConfig, clock: PinnedClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        Server(token_config, clock=clock) as server,
        httpx.AsyncClient(base_url=server.url, timeout=5) as http,
    ):
        server.store.close()  # the file is gone from under the server: every write fails
        response = await http.post("/api/lines/fa1/corrections", json=CORRECTION, headers=AUTH)
        state = await fa1_state(http)
        health = await http.get("/healthz")
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "store_unavailable"
    assert (state["shift_count"], state["corrections"]) == (0, 0)
    assert health.status_code == 200
    assert len([r for r in caplog.records if r.getMessage().startswith("state store: ")]) >= 1


async def test_an_unreadable_or_empty_token_stops_the_start(
    server_config: ServerConfig, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-token"
    empty.write_text("\n", encoding="utf-8")
    for secret, problem in [
        (SecretRef(file=tmp_path / "no-such-token"), "api_token: cannot read secret file"),
        (SecretRef(file=empty), "api_token: the secret SecretRef(file="),
    ]:
        settings = server_config.settings.model_copy(update={"api_token": secret})
        with pytest.raises(ServerStartError, match=re.escape(problem)):
            Server(ServerConfig(settings, server_config.plant))
