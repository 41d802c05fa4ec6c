"""Alerts end to end through the real server: counter messages and edge heartbeats on a real
Mosquitto (as an edge publishes them), a pinned clock the test moves, mail through a real SMTP
server (aiosmtpd), webhooks to a real HTTP receiver, the acknowledge link and the API."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.app import Server
from taktline.config import ServerConfig
from taktline.config.settings import AlertDelivery, GrafanaSettings, ServerAlerts, SmtpSettings
from taktline.localbroker import free_port
from taktline.model import HttpListen, SecretRef
from tests.alerts.plants import FAST, ONLY_STOPS, email, roster_plant
from tests.fixtures.grafana_contract import GrafanaContractServer, run_grafana_contract
from tests.fixtures.smtp import ReceivedMail, SmtpServer, run_smtp
from tests.fixtures.webhook import WebhookReceiver, run_webhook_receiver
from tests.server.conftest import (
    AUTH,
    FA1,
    PinnedClock,
    Publish,
    eventually,
    publish_counter,
    publish_status,
)
from tests.server.grafana.conftest import GRAFANA_TOKEN
from tests.server.test_events import next_line_state, sse_events

EDGE = "edge-fa1"
LINK = re.compile(r"Acknowledge: (http://\S+/alerts/ack/(\S+))")
STOP_SUBJECT = "[critical] Final assembly line 1 stopped: no unit for 6 min (takt 60 s)"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with run_smtp() as server:
        yield server


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with run_webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
def grafana() -> Iterator[GrafanaContractServer]:
    """The Grafana contract server: Grafana itself cannot run here."""
    with run_grafana_contract(GRAFANA_TOKEN) as server:
        yield server


@pytest.fixture
def dead_hook() -> Iterator[WebhookReceiver]:
    """A webhook that takes the request and never answers (until the test ends)."""
    with run_webhook_receiver() as receiver:
        receiver.gate.clear()
        yield receiver


def alert_config(
    base: ServerConfig,
    smtp: SmtpServer,
    channels: dict[str, list[Any]] | None = None,
    **settings_update: Any,
) -> ServerConfig:
    """`base` with rosters, only the stop rule, mail through `smtp` and ack links to itself."""
    port = free_port()
    relay = SmtpSettings.model_validate(
        {"host": smtp.host, "port": smtp.port, "from": "taktline@plant.example", "starttls": False}
    )
    delivery = AlertDelivery(public_url=f"http://127.0.0.1:{port}", smtp=relay, retry=FAST)
    settings = base.settings.model_copy(
        update={
            "http": HttpListen(host="127.0.0.1", port=port),
            "alerts": ServerAlerts(delivery=delivery, repeat_minutes=0),
            **settings_update,
        }
    )
    plant = roster_plant(channels, alerts={**ONLY_STOPS, "milestone": {"enabled": False}})
    return ServerConfig(settings, plant)


def json_hook(receiver: WebhookReceiver, name: str, read_timeout_s: int = 4) -> str:
    return f"json://127.0.0.1:{receiver.port}/hooks/{name}?rto={read_timeout_s}"


async def evaluated(server: Server, times: int = 3, *, settle: bool = True) -> None:
    """Until the server evaluated its rules (and ticked its escalations) `times` more times,
    then (with `settle`: no channel hangs) until what that sent has its results."""
    start = server.evaluations

    async def done() -> bool:
        return server.evaluations >= start + times

    await eventually(done)
    if settle:
        await server.alerts.settle()


async def heartbeat(publish: Publish, clock: PinnedClock) -> None:
    """The edge's `online` status, which keeps a quiet line's data fresh."""
    await publish_status(publish, EDGE, "online", ["fa1"], clock.now)


async def start_running(server: Server, publish: Publish, clock: PinnedClock) -> int:
    """One unit on fa1 now; returns the total."""
    await server.listener.connected.wait()
    total = 16_250_300
    await publish_counter(publish, FA1, total, 1, clock.now)
    await heartbeat(publish, clock)

    async def seen() -> bool:
        snapshot = server.board.snapshot("fa1")
        return snapshot is not None and snapshot.total == total and snapshot.status == "running"

    await eventually(seen)
    return total


async def stop_for(server: Server, publish: Publish, clock: PinnedClock, minutes: float) -> None:
    """The line makes nothing for `minutes` (its edge still beats)."""
    clock.advance(minutes=minutes)
    await heartbeat(publish, clock)
    await evaluated(server)


async def run_again(
    server: Server,
    publish: Publish,
    clock: PinnedClock,
    total: int,
    minutes: int,
    *,
    settle: bool = True,
) -> int:
    """A unit a minute for `minutes`; returns the total."""
    for _ in range(minutes):
        clock.advance(minutes=1)
        total += 1
        await publish_counter(publish, FA1, total, 1, clock.now)
        await heartbeat(publish, clock)

        async def seen(expected: int = total) -> bool:
            snapshot = server.board.snapshot("fa1")
            return snapshot is not None and snapshot.total == expected

        await eventually(seen)
        await evaluated(server, 2, settle=settle)
    return total


async def mails(smtp: SmtpServer, count: int) -> list[ReceivedMail]:
    return await asyncio.to_thread(smtp.wait_for_mails, count)


async def test_a_stop_mails_the_lead_once_and_the_link_acknowledges_with_a_post_only(
    server_config: ServerConfig, clock: PinnedClock, publish: Publish, smtp: SmtpServer
) -> None:
    config = alert_config(server_config, smtp)
    async with (
        Server(config, clock=clock, evaluate_every_s=0.05) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        await start_running(server, publish, clock)
        await stop_for(server, publish, clock, 6)
        [mail] = await mails(smtp, 1)
        await stop_for(server, publish, clock, 1)  # still stopped: nothing new
        assert len(smtp.mails) == 1
        screen = (await http.get("/api/lines/fa1")).json()
        async with http.stream("GET", "/api/lines/fa1/events") as stream, asyncio.timeout(10):
            pushed = await next_line_state(sse_events(stream), line="fa1")

        link = LINK.search(mail.text())
        assert link is not None
        shown = await http.get(link.group(1))
        after_get = (await http.get("/api/alerts")).json()
        acknowledged = await http.post(link.group(1))
        after_post = (await http.get("/api/alerts")).json()
        screen_after = (await http.get("/api/lines/fa1")).json()

        await stop_for(server, publish, clock, 16)  # past the area manager's 15 minutes
        assert len(smtp.mails) == 1

    assert mail.rcpt_tos == [email("anna")]
    assert str(mail.message["Subject"]) == STOP_SUBJECT
    assert [(a["rule"], a["state"], a["notified"]) for a in screen["alerts"]] == [
        ("line_stopped", "notified", ["Anna Berger"])
    ]
    assert pushed["alerts"] == screen["alerts"]
    assert shown.status_code == 200
    assert '<form method="post">' in shown.text and "Acknowledge as Anna Berger" in shown.text
    assert shown.headers["cache-control"] == "no-store"
    assert [a["state"] for a in after_get] == ["notified"]  # opening the link changed nothing
    assert acknowledged.status_code == 200
    assert "Acknowledged by Anna Berger" in acknowledged.text
    [alert] = after_post
    assert (alert["state"], alert["acknowledged_by"], alert["acknowledged_via"]) == (
        "acknowledged",
        "anna",
        "link",
    )
    assert screen_after["alerts"][0]["acknowledged_by"] == "Anna Berger"


async def test_unacknowledged_the_area_manager_gets_mail_and_a_webhook_and_a_dead_hook_delays_none(
    server_config: ServerConfig,
    clock: PinnedClock,
    publish: Publish,
    smtp: SmtpServer,
    hook: WebhookReceiver,
    dead_hook: WebhookReceiver,
) -> None:
    channels = {
        "anna": [json_hook(dead_hook, "anna", 30), email("anna")],  # the hook never answers
        "fatma": [email("fatma"), json_hook(hook, "fatma")],
    }
    config = alert_config(server_config, smtp, channels)
    async with (
        Server(config, clock=clock, evaluate_every_s=0.05) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        total = await start_running(server, publish, clock)
        clock.advance(minutes=6)
        await heartbeat(publish, clock)
        [lead_mail] = await mails(smtp, 1)  # while anna's hook hangs
        await asyncio.to_thread(dead_hook.wait_for_requests, 1)
        clock.advance(minutes=15)
        await heartbeat(publish, clock)
        escalated = await mails(smtp, 2)
        [fatma_hook] = await asyncio.to_thread(hook.wait_for_requests, 1)

        await run_again(server, publish, clock, total, 5, settle=False)  # anna's hook hangs
        resolved = await mails(smtp, 4)
        history = (await http.get("/api/alerts/history", params={"limit": 5})).json()
        open_alerts = (await http.get("/api/alerts")).json()
        dead_hook.gate.set()

    assert lead_mail.rcpt_tos == [email("anna")]
    assert escalated[1].rcpt_tos == [email("fatma")]
    assert str(escalated[1].message["Subject"]).startswith("[critical] Not acknowledged: ")
    assert fatma_hook.path == "/hooks/fatma"
    assert fatma_hook.body["title"] == str(escalated[1].message["Subject"])
    assert sorted(m.rcpt_tos[0] for m in resolved[2:]) == [email("anna"), email("fatma")]
    assert all(str(m.message["Subject"]).startswith("[resolved] ") for m in resolved[2:])
    assert open_alerts == []
    [alert] = history
    assert (alert["id"], alert["rule"], alert["state"]) == (1, "line_stopped", "resolved")
    assert "running again" in alert["resolved_message"]
    assert [(s["person"], s["alerted"]) for s in alert["escalation"]] == [
        ("anna", True),
        ("fatma", True),
        ("georg", False),
    ]
    reached = {
        (n["person"], n["channel"].split(":")[0], n["result"]) for n in alert["notifications"]
    }
    assert ("anna", "mailto", "delivered") in reached
    assert ("fatma", "json", "delivered") in reached
    assert ("anna", "json", "pending") in reached  # the dead hook's first attempt still hangs


async def test_the_api_acknowledges_with_the_token_audits_it_and_shows_history(
    token_config: ServerConfig,
    clock: PinnedClock,
    publish: Publish,
    smtp: SmtpServer,
    grafana: GrafanaContractServer,
    tmp_path: Path,
) -> None:
    secret = tmp_path / "grafana-token"
    secret.write_text(GRAFANA_TOKEN, encoding="utf-8")
    grafana_settings = GrafanaSettings(url=grafana.url, token=SecretRef(file=secret))
    config = alert_config(token_config, smtp, grafana=grafana_settings)
    body = {"by": "Ben (maintenance)", "note": "belt replaced"}
    async with (
        Server(config, clock=clock, evaluate_every_s=0.05) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        total = await start_running(server, publish, clock)
        await stop_for(server, publish, clock, 6)
        [mail] = await mails(smtp, 1)
        link = LINK.search(mail.text())
        assert link is not None
        refused = await http.post("/api/alerts/1/ack", json=body)
        accepted = await http.post("/api/alerts/1/ack", json=body, headers=AUTH)
        again = await http.post("/api/alerts/1/ack", json=body, headers=AUTH)
        unknown = await http.post("/api/alerts/9/ack", json=body, headers=AUTH)
        link_again = await http.post(link.group(1))
        audit = (await http.get("/api/audit", headers=AUTH)).json()
        await run_again(server, publish, clock, total, 5)
        history = (await http.get("/api/alerts/history")).json()

        async def annotated() -> list[dict[str, Any]]:
            return list(grafana.state.annotations.values())

        [annotation] = await eventually(annotated)
        one = (await http.get("/api/alerts/1")).json()
        link_resolved = await http.get(link.group(1))
        bad_link = await http.get(link.group(1)[:-3] + "xyz")
        other_alert_1 = server.ack_tokens.issue("1@1700000000", "anna")  # a store started afresh
        foreign = await http.get(f"/alerts/ack/{other_alert_1}")
        clock.advance(hours=13)  # past the link's 12 hours
        expired = await http.get(link.group(1))
        await server.alerts.settle()

    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert accepted.status_code == 200
    acked = accepted.json()
    assert acked["alert"]["state"] == "acknowledged"
    assert acked["alert"]["acknowledged_by"] == "Ben (maintenance)"
    assert acked["alert"]["acknowledged_via"] == "api"
    assert (again.status_code, again.json()["error"]) == (409, "already_acknowledged")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_alert")
    assert link_again.status_code == 409 and "Acknowledged already by Ben" in link_again.text
    [entry] = [e for e in audit if e["endpoint"] == "POST /api/alerts/{id}/ack"]
    assert entry["id"] == acked["audit_id"]
    assert (entry["line"], entry["by"]) == ("fa1", "Ben (maintenance)")
    assert entry["body"] == {"alert": 1, **body}
    [closed] = history
    assert (closed["state"], closed["acknowledged_by"]) == ("resolved", "Ben (maintenance)")
    assert one == closed
    assert link_resolved.status_code == 200 and "Resolved at" in link_resolved.text
    assert "<form" not in link_resolved.text
    assert bad_link.status_code == 400 and "not a valid acknowledgement link" in bad_link.text
    assert expired.status_code == 410 and "expired" in expired.text
    assert foreign.status_code == 404 and "There is no alert 1." in foreign.text
    assert [m.rcpt_tos for m in smtp.mails] == [[email("anna")]] * 3
    assert [str(m.message["Subject"]).split("]")[0] for m in smtp.mails] == [
        "[critical",
        "[acknowledged",
        "[resolved",
    ]
    assert annotation["tags"] == [
        "alert",
        "rule:line_stopped",
        "line:fa1",
        "severity:critical",
        "alert:1",
    ]
    assert "acknowledged by Ben (maintenance)" in annotation["text"]


async def test_a_restarted_server_keeps_the_alert_open_and_escalates_on_schedule(
    server_config: ServerConfig,
    clock: PinnedClock,
    publish: Publish,
    smtp: SmtpServer,
    tmp_path: Path,
) -> None:
    config = alert_config(server_config, smtp)
    raised_at = clock.now + dt.timedelta(minutes=6)
    async with Server(config, clock=clock, evaluate_every_s=0.05) as first:
        await start_running(first, publish, clock)
        await stop_for(first, publish, clock, 6)
        await mails(smtp, 1)
    clock.advance(minutes=5)
    async with Server(config, clock=clock, evaluate_every_s=0.05) as second:
        await second.listener.connected.wait()
        await heartbeat(publish, clock)
        await evaluated(second)
        assert len(smtp.mails) == 1  # the same stop: not raised again
        [alert] = second.alerts.open_alerts()
        assert (alert.id, alert.raised_at, alert.state) == (1, raised_at, "notified")
        clock.advance(minutes=9)  # 14 minutes after the alert
        await heartbeat(publish, clock)
        await evaluated(second)
        assert len(smtp.mails) == 1
        clock.advance(minutes=1)
        await heartbeat(publish, clock)
        escalated = await mails(smtp, 2)

    assert escalated[1].rcpt_tos == [email("fatma")]
    assert (tmp_path / "server-state" / "server.sqlite").exists()


async def test_metrics_count_the_alert_and_its_messages_by_scheme_only(
    server_config: ServerConfig,
    clock: PinnedClock,
    publish: Publish,
    smtp: SmtpServer,
    hook: WebhookReceiver,
) -> None:
    channels = {"anna": [email("anna"), json_hook(hook, "anna-s3cret-path")]}
    config = alert_config(server_config, smtp, channels)
    async with (
        Server(config, clock=clock, evaluate_every_s=0.05) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        before = (await http.get("/metrics")).text
        await start_running(server, publish, clock)
        await stop_for(server, publish, clock, 6)
        [mail] = await mails(smtp, 1)
        await asyncio.to_thread(hook.wait_for_requests, 1)
        await server.alerts.settle()
        link = LINK.search(mail.text())
        assert link is not None
        assert (await http.post(link.group(1))).status_code == 200
        after = (await http.get("/metrics")).text

    assert "taktline_server_alerts_raised_total{" not in before
    assert "taktline_server_alert_messages_total{" not in before
    key = 'rule="line_stopped",severity="critical"'
    for line in (
        f"taktline_server_alerts_open{{{key}}} 1.0",
        f"taktline_server_alerts_raised_total{{{key}}} 1.0",
        f"taktline_server_alerts_acknowledged_total{{{key}}} 1.0",
        f"taktline_server_alerts_resolved_total{{{key}}} 0.0",
        'taktline_server_alert_messages_total{result="delivered",scheme="mailto"} 1.0',
        'taktline_server_alert_messages_total{result="failed",scheme="mailto"} 0.0',
        'taktline_server_alert_messages_total{result="delivered",scheme="json"} 1.0',
        'taktline_server_alert_channels_failing{scheme="json"} 0.0',
        "taktline_server_alerts_store_failures_total 0.0",
    ):
        assert line in after.splitlines(), line
    evaluations = re.search(r"^taktline_server_alerts_evaluations_total (\S+)$", after, re.M)
    assert evaluations is not None and float(evaluations.group(1)) >= 3
    assert "s3cret" not in after and "plant.example" not in after and str(smtp.port) not in after


async def test_a_rule_that_raises_is_logged_once_counted_and_the_server_goes_on(
    server_config: ServerConfig,
    clock: PinnedClock,
    smtp: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="server.app")
    config = alert_config(server_config, smtp, {"anna": [email("anna")]})
    async with Server(config, clock=clock, evaluate_every_s=0.05) as server:
        evaluate = server.evaluator.evaluate
        broken = {"left": 3}

        def flaky(*args: Any, **kwargs: Any) -> Any:
            if broken["left"]:
                broken["left"] -= 1
                raise ZeroDivisionError("a bug in a rule")
            return evaluate(*args, **kwargs)

        monkeypatch.setattr(server.evaluator, "evaluate", flaky)
        await evaluated(server, 2, settle=False)  # it went on after the three failures
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            metrics = (await http.get("/metrics")).text
            assert (await http.get("/api/lines")).status_code == 200
    assert server.evaluation_errors == 3
    assert "taktline_server_alerts_evaluation_errors_total 3.0" in metrics.splitlines()
    failures = [r for r in caplog.records if "evaluating the rules failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert any("evaluating the rules works again" in r.getMessage() for r in caplog.records)
