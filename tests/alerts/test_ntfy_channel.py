"""A self-hosted ntfy server as a person's channel: the alert, its acknowledge link and the
acknowledged notice arrive as ntfy publishes (a real HTTP receiver on 127.0.0.1 stands in for
the ntfy server: apprise posts ntfy's JSON publish body to it)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.alerts.plants import berlin, roster_plant
from tests.alerts.test_lifecycle import LINK, Clock, running_engine, stopped
from tests.fixtures.smtp import SmtpServer
from tests.fixtures.webhook import WebhookReceiver, run_webhook_receiver


@pytest.fixture
def ntfy() -> Iterator[WebhookReceiver]:
    with run_webhook_receiver() as receiver:
        yield receiver


async def test_an_alert_and_its_acknowledgement_reach_an_ntfy_topic(
    ntfy: WebhookReceiver, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    plant = roster_plant({"anna": [{"url": f"ntfy://127.0.0.1:{ntfy.port}/fa1-alerts"}]})
    clock = Clock(berlin(10))
    async with running_engine(plant, tmp_path / "state", clock, smtp_server) as engine:
        await engine.handle([stopped(clock.now)])
        await engine.settle()
        [alert] = engine.open_alerts()
        clock.advance(minutes=16)  # the area manager (mail) is alerted too
        await engine.tick()
        await engine.settle()
        await engine.acknowledge(1, "fatma", "link")
        await engine.settle()
        published = await asyncio.to_thread(ntfy.wait_for_requests, 2)

    first, told = (request.body for request in published)
    assert first["topic"] == "fa1-alerts"
    assert (
        first["title"] == "[critical] Final assembly line 1 stopped: no unit for 5 min (takt 60 s)"
    )
    assert LINK.search(first["message"]) is not None
    assert told["title"].startswith("[acknowledged] Final assembly line 1")
    assert "Acknowledged by Fatma Demir" in told["message"]
    assert [(n.person, n.reason, n.result) for n in alert.notifications] == [
        ("anna", "alert", "delivered"),
        ("fatma", "escalation", "delivered"),
        ("anna", "acknowledged", "delivered"),
    ]
    assert alert.notifications[0].channel.startswith("ntfy://")
