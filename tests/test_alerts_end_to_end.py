"""Alerts end to end: the simulator stops a line -> the edge -> the live bus -> the server's
rules -> one mail to the shift lead on duty through a real SMTP server (aiosmtpd) -> the link in
the mail acknowledges -> escalation and reminders stop -> the line runs again -> one resolved
notice.

Everything runs in real time on real parts (Mosquitto, the simulator's MQTT devices, an edge,
the server, aiosmtpd); only the plant is made fast: a takt of 1 s, a stop after 5 takts. The
escalation level's `after_minutes` is an integer of at least 1, so the test waits past that
minute to show that the acknowledgement stopped it; that is most of its time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.agent import EdgeAgent
from server.app import Server
from taktline.config import ServerConfig, load_plant
from taktline.config.settings import AlertDelivery, RetryPolicy, ServerAlerts, SmtpSettings
from taktline.demo.runner import local_configs
from taktline.localbroker import free_port
from taktline.model import HttpListen, Plant
from tests.fixtures.services import MosquittoService
from tests.fixtures.sim import running_simulator
from tests.fixtures.smtp import ReceivedMail, SmtpServer, run_smtp

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LEAD, AREA_MANAGER = "lead@plant.example", "area.manager@plant.example"
LINK = re.compile(r"Acknowledge: (http://\S+/alerts/ack/\S+)")
RATE_PER_MIN = 240
"""Units per minute on each line: 4 per takt of 1 s, so a running line never looks stopped."""
ESCALATION_MINUTES = 1
"""The smallest the model allows (`EscalationLevel.after_minutes`: an integer above 0)."""
EVALUATE_EVERY_S = 0.2
WAIT_S = 30.0

PLANT_YAML = f"""\
name: Alert test works
sites:
  - id: works
    name: Works
    areas:
      - id: assembly
        name: Assembly
        lines:
          - id: l1
            name: Line 1
            output: end/produced
            target: {{takt_seconds: 1}}
            shift_calendar: round-the-clock
            stations:
              - id: end
                name: End of line 1
                counters: [{{name: produced}}]
          - id: l2
            name: Line 2
            output: end/produced
            target: {{takt_seconds: 1}}
            shift_calendar: round-the-clock
            stations:
              - id: end
                name: End of line 2
                counters: [{{name: produced}}]
shift_calendars:
  round-the-clock:                      # one 24 h shift every day, no breaks: always on duty
    timezone: UTC
    shifts: [{{name: day, start: "00:00", end: "00:00"}}]
sources:
  - type: mqtt
    id: devices
    broker: {{host: 127.0.0.1, port: 1883, client_id: alert-test-edge}}
    topics:
      - {{topic: works/l1/produced, counter: works/assembly/l1/end/produced, value: count,
         timestamp: ts}}
      - {{topic: works/l2/produced, counter: works/assembly/l2/end/produced, value: count,
         timestamp: ts}}
rosters:
  people:
    - {{id: lea, name: Lea Lead, channels: ["{LEAD}"]}}
    - {{id: arno, name: Arno Area, channels: ["{AREA_MANAGER}"]}}
  crews: [{{id: a, lead: lea}}]
  rotations:
    - {{id: one-crew, calendar: round-the-clock, anchor: "2026-01-05", areas: [works/assembly],
       by_shift: {{day: A}}}}
  escalation:
    - scope: works/assembly
      levels: [{{name: area manager, person: arno, after_minutes: {ESCALATION_MINUTES}}}]
alerts:
  line_stopped: {{after_takts: 5, min_minutes: 0, clear_takts: 3, clear_for_minutes: 0}}
  rate_below_target: {{enabled: false}}
  shift_target_at_risk: {{enabled: false}}
  yield_below: {{enabled: false}}
  source_stale: {{enabled: false}}
  edge_backlog: {{enabled: false}}
  milestone: {{enabled: false}}
"""


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with run_smtp() as server:
        yield server


def the_plant(tmp_path: Path) -> Plant:
    """The plant above, loaded (and checked) as a plant file is."""
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(PLANT_YAML, encoding="utf-8")
    return load_plant(plant_file)


def with_alerts(config: ServerConfig, smtp: SmtpServer) -> ServerConfig:
    """The server on a port known beforehand (the ack link names it), mailing through `smtp`,
    with a reminder every 30 s (acknowledging stops it too)."""
    port = free_port()
    relay = SmtpSettings.model_validate(
        {"host": smtp.host, "port": smtp.port, "from": "taktline@plant.example", "starttls": False}
    )
    delivery = AlertDelivery(
        public_url=f"http://127.0.0.1:{port}",
        smtp=relay,
        retry=RetryPolicy(max_attempts=2, min_backoff_s=0.01, max_backoff_s=0.02),
    )
    settings = config.settings.model_copy(
        update={
            "http": HttpListen(host="127.0.0.1", port=port),
            "alerts": ServerAlerts(delivery=delivery, repeat_minutes=0.5),
        }
    )
    return ServerConfig(settings, config.plant)


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout_s: float = WAIT_S) -> Any:
    """Poll `check()` until it returns something truthy (bounded)."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                if value := await check():
                    return value
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"{what}: not within {timeout_s} s") from None


async def evaluations(server: Server, count: int) -> None:
    """Until the server evaluated its rules (and ticked escalations) `count` more times."""
    target = server.evaluations + count

    async def done() -> bool:
        return server.evaluations >= target

    await until(done, f"{count} evaluations")


async def mails(smtp: SmtpServer, count: int) -> list[ReceivedMail]:
    return await asyncio.to_thread(smtp.wait_for_mails, count, WAIT_S)


async def test_a_stopped_line_mails_the_lead_once_and_the_link_stops_escalation(
    tmp_path: Path, mosquitto: MosquittoService, smtp: SmtpServer
) -> None:
    async with running_simulator(
        the_plant(tmp_path), mosquitto.port, rate_per_min=RATE_PER_MIN, seed=8
    ) as (plant, sim):
        edge_config, server_config = local_configs(
            plant,
            tmp_path / "plant.yaml",
            tmp_path,
            mqtt_port=mosquitto.port,
            http_port=0,
            influxdb=None,
        )
        outputs = [placed.output_path() for placed in plant.lines()]
        async with EdgeAgent(edge_config) as edge:

            async def edge_counts() -> bool:
                return all(edge.total(path) is not None for path in outputs)

            await until(edge_counts, "the edge reads both lines")
            async with (
                Server(
                    with_alerts(server_config, smtp), evaluate_every_s=EVALUATE_EVERY_S
                ) as server,
                httpx.AsyncClient(base_url=server.url, timeout=10) as http,
            ):

                async def both_running() -> bool:
                    lines = (await http.get("/api/lines")).json()
                    return [line["status"] for line in lines] == ["running", "running"]

                await until(both_running, "both lines run on the server")
                await evaluations(server, 5)
                running = (await http.get("/api/alerts")).json()

                sim.stop_line("l1")
                [alert_mail] = await mails(smtp, 1)
                link = LINK.search(alert_mail.text())
                assert link is not None, alert_mail.text()
                shown = await http.get(link.group(1))
                after_get = (await http.get("/api/alerts")).json()
                acknowledged = await http.post(link.group(1))
                [alert] = (await http.get("/api/alerts")).json()

                escalation_due = dt.datetime.fromisoformat(alert["escalation"][1]["due_at"])

                async def past_escalation() -> bool:
                    return server.board.now() > escalation_due

                await until(
                    past_escalation, "the escalation's time", 60 * ESCALATION_MINUTES + WAIT_S
                )
                await evaluations(server, 5)
                await server.alerts.settle()
                mails_while_stopped = len(smtp.mails)
                [unescalated] = (await http.get("/api/alerts")).json()

                sim.resume_line("l1")
                resolved_mails = await mails(smtp, 2)
                await evaluations(server, 5)
                await server.alerts.settle()
                open_after = (await http.get("/api/alerts")).json()
                [history] = (await http.get("/api/alerts/history")).json()

    assert running == []  # nothing fired while both lines ran
    assert alert_mail.rcpt_tos == [LEAD]
    assert str(alert_mail.message["Subject"]).startswith("[critical] Line 1 stopped: ")
    assert shown.status_code == 200 and "Acknowledge as Lea Lead" in shown.text
    assert [a["state"] for a in after_get] == ["notified"]  # opening the link changed nothing
    assert acknowledged.status_code == 200 and "Acknowledged by Lea Lead" in acknowledged.text
    assert (alert["rule"], alert["lines"], alert["state"]) == (
        "line_stopped",
        ["l1"],
        "acknowledged",
    )
    assert (alert["acknowledged_by"], alert["acknowledged_via"]) == ("lea", "link")
    assert [(s["person"], s["alerted"]) for s in alert["escalation"]] == [
        ("lea", True),
        ("arno", False),
    ]
    assert mails_while_stopped == 1  # no escalation to arno, no reminder to lea
    assert [(s["person"], s["alerted"]) for s in unescalated["escalation"]] == [
        ("lea", True),
        ("arno", False),
    ]
    assert len(resolved_mails) == 2 == len(smtp.mails)
    assert resolved_mails[1].rcpt_tos == [LEAD]
    assert str(resolved_mails[1].message["Subject"]).startswith("[resolved] ")
    assert open_after == []
    assert (history["id"], history["state"], history["acknowledged_by"]) == (
        alert["id"],
        "resolved",
        "lea",
    )
    assert "running again" in history["resolved_message"]
