"""Two server replicas on one real PostgreSQL store, one live bus (real Mosquitto) and a real
SMTP server (aiosmtpd): a stop mails the lead once, both screens show the alert, and the
acknowledge link answered by the replica that did not send it stops the escalation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from server.app import Server
from taktline.config import ServerConfig
from taktline.config.settings import AckSettings, ServerAlerts, ServerSettings
from taktline.model import SecretRef
from tests.alerts.plants import email
from tests.fixtures.postgres import PostgresService
from tests.fixtures.smtp import SmtpServer, run_smtp
from tests.server.conftest import PinnedClock, Publish, eventually
from tests.server.test_alerts import (
    LINK,
    alert_config,
    evaluated,
    mails,
    start_running,
    stop_for,
)

STORE_ENV = "TAKTLINE_TEST_STATE_STORE"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with run_smtp() as server:
        yield server


def replica_config(base: ServerConfig, smtp: SmtpServer, key: Path) -> ServerConfig:
    """A replica: its own HTTP port, the shared store (from the environment) and ack key."""
    config = alert_config(base, smtp)
    delivery = config.settings.alerts.delivery.model_copy(
        update={"ack": AckSettings(signing_key=SecretRef(file=key))}
    )
    settings = config.settings.model_copy(
        update={
            "state_store": SecretRef(env=STORE_ENV),
            "alerts": ServerAlerts(delivery=delivery, repeat_minutes=0),
        }
    )
    return ServerConfig(settings, config.plant)


async def test_two_replicas_send_one_mail_and_either_takes_the_acknowledgement(
    server_config: ServerConfig,
    clock: PinnedClock,
    publish: Publish,
    smtp: SmtpServer,
    postgres: PostgresService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(STORE_ENV, postgres.new_database())
    key = tmp_path / "ack-key"
    key.write_text("one-signing-key-for-every-replica-0123456789", encoding="utf-8")
    async with (
        Server(replica_config(server_config, smtp, key), clock=clock, evaluate_every_s=0.05) as a,
        Server(replica_config(server_config, smtp, key), clock=clock, evaluate_every_s=0.05) as b,
    ):
        await b.listener.connected.wait()
        await start_running(a, publish, clock)
        await stop_for(a, publish, clock, 6)
        [mail] = await mails(smtp, 1)
        [running] = [server for server in (a, b) if server.alerts.leading]
        [following] = [server for server in (a, b) if not server.alerts.leading]
        async with httpx.AsyncClient(base_url=following.url, timeout=10) as http:

            async def shown() -> list[dict[str, object]]:
                return list((await http.get("/api/lines/fa1")).json()["alerts"])

            [on_screen] = await eventually(shown)
            link = LINK.search(mail.text())
            assert link is not None
            acknowledged = await http.post(urlsplit(link.group(1)).path)

        await stop_for(running, publish, clock, 16)  # past the area manager's 15 minutes
        await evaluated(following)
        [alert] = running.alerts.open_alerts()

    assert mail.rcpt_tos == [email("anna")]
    assert len(smtp.mails) == 1
    assert (on_screen["rule"], on_screen["state"]) == ("line_stopped", "notified")
    assert acknowledged.status_code == 200 and "Acknowledged by Anna Berger" in acknowledged.text
    assert (alert.state, alert.acknowledged_by, alert.acknowledged_via) == (
        "acknowledged",
        "anna",
        "link",
    )
    assert following.alerts.acknowledged.total() == 1


def test_a_shared_store_without_one_ack_signing_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"needs alerts\.delivery\.ack\.signing_key"):
        ServerSettings.model_validate(
            {"plant": tmp_path / "plant.yaml", "state_store": {"env": STORE_ENV}}
        )
