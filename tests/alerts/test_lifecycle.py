"""The alert engine on a fake clock against a real SMTP server (aiosmtpd): one mail to the lead
on duty, deduplication, escalation, acknowledgement, reminders, the resolved notice, a restart
with the same store, and a shift change."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from server.alerts.ack_tokens import AckTokens
from server.alerts.alert_store import AlertStore
from server.alerts.lifecycle import (
    AlertClosed,
    AlertEngine,
    AlreadyAcknowledged,
    UnknownAlert,
)
from server.alerts.transitions import AlertKey, Transition
from server.database import StoreError
from server.store import StateStore
from taktline.config.settings import RetryPolicy, SmtpSettings
from taktline.localbroker import free_port
from taktline.model import Plant
from tests.alerts.plants import FAST, berlin, email, roster_plant
from tests.fixtures.smtp import ReceivedMail, SmtpServer, run_smtp

PUBLIC_URL = "https://taktline.plant.example"
SIGNING_KEY = "a-test-signing-key-of-enough-length"
FA1_STOP = AlertKey("line_stopped", "line/fa1")
LINK = re.compile(r"Acknowledge: (https://taktline\.plant\.example/alerts/ack/(\S+))")


class Clock:
    """A clock that moves only when told to."""

    def __init__(self, now: dt.datetime):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


def stopped(at: dt.datetime, key: AlertKey = FA1_STOP, line: str = "fa1") -> Transition:
    name = {"fa1": "Final assembly line 1", "fa2": "Final assembly line 2"}.get(line, line)
    return Transition(
        kind="firing",
        key=key,
        severity="critical",
        at=at,
        since=at - dt.timedelta(minutes=5),
        message=f"{name} stopped: no unit for 5 min (takt 60 s)",
        lines=(line,),
        values={"stopped_s": 300},
    )


def running(at: dt.datetime, key: AlertKey = FA1_STOP, line: str = "fa1") -> Transition:
    return Transition(
        kind="resolved",
        key=key,
        severity="critical",
        at=at,
        since=at - dt.timedelta(minutes=2),
        message=f"{line} running again: last unit 20 s ago",
        lines=(line,),
    )


def relay(server: SmtpServer) -> SmtpSettings:
    return SmtpSettings.model_validate(
        {"host": server.host, "port": server.port, "from": "taktline@plant.example"}
        | {"starttls": False}
    )


def tokens(clock: Clock) -> AckTokens:
    return AckTokens(SIGNING_KEY, clock=lambda: clock().timestamp())


@asynccontextmanager
async def running_engine(
    plant: Plant,
    location: Path | str,
    clock: Clock,
    smtp: SmtpServer,
    policy: RetryPolicy = FAST,
    **options: Any,
) -> AsyncIterator[AlertEngine]:
    store = StateStore(location)
    try:
        async with AlertEngine(
            plant,
            AlertStore(store),
            clock=clock,
            policy=policy,
            smtp=relay(smtp),
            tokens=tokens(clock),
            public_url=PUBLIC_URL,
            **options,
        ) as engine:
            yield engine
    finally:
        store.close()


@asynccontextmanager
async def relay_down(
    plant: Plant, location: Path | str, clock: Clock, port: int
) -> AsyncIterator[AlertEngine]:
    """An engine whose SMTP relay (`port`) does not answer: a mail waits 30-60 s for its
    second attempt, so it is still pending when the engine stops."""
    async with running_engine(
        plant,
        location,
        clock,
        SmtpServer("127.0.0.1", port),
        policy=RetryPolicy(max_attempts=5, min_backoff_s=30, max_backoff_s=60),
    ) as engine:
        yield engine


async def ticks(engine: AlertEngine, clock: Clock, minutes: int) -> None:
    """Move the clock a minute at a time, ticking the engine (and waiting for what it sends)
    each minute, so mails arrive in the order they were sent."""
    for _ in range(minutes):
        clock.advance(minutes=1)
        await engine.tick()
        await engine.settle()


def to(mails: list[ReceivedMail]) -> list[str]:
    return [person for mail in mails for person in mail.rcpt_tos]


def subject(mail: ReceivedMail) -> str:
    return str(mail.message["Subject"])


async def test_the_lead_on_duty_gets_exactly_one_mail_while_the_alert_fires(
    smtp_server: SmtpServer, state_location: Path | str
) -> None:
    clock = Clock(berlin(10))
    async with running_engine(roster_plant(), state_location, clock, smtp_server) as engine:
        await engine.handle([stopped(clock.now)])
        await engine.settle()
        [alert] = engine.open_alerts()
        clock.advance(seconds=30)
        await engine.handle([stopped(clock.now)])  # the same key again: deduplicated
        await engine.tick()
        await engine.settle()

    [mail] = smtp_server.mails
    assert to([mail]) == [email("anna")]
    assert (
        subject(mail) == "[critical] Final assembly line 1 stopped: no unit for 5 min (takt 60 s)"
    )
    text = mail.text()
    assert "Line: Final assembly line 1 (fa1)" in text
    assert "Since: 2026-11-25 09:55 (Europe/Berlin) · alert 1 · line_stopped · critical" in text
    assert "You get this as: shift lead" in text
    assert f"Line screen: {PUBLIC_URL}/lines/fa1" in text
    match = LINK.search(text)
    assert match is not None
    assert tokens(clock).verify(match.group(2), 3600) == (alert.ref, "anna")
    assert alert.ref == f"1@{int(berlin(10).timestamp())}"
    assert alert.state == "notified"
    [notification] = alert.notifications
    assert (notification.person, notification.level, notification.reason) == (
        "anna",
        "shift lead",
        "alert",
    )
    assert (notification.result, notification.attempts) == ("delivered", 1)
    assert notification.channel == (
        f"mailto://{smtp_server.host}:{smtp_server.port}/anna%40plant.example"
    )


async def test_unacknowledged_the_next_levels_get_mail_after_their_minutes(
    smtp_server: SmtpServer, state_location: Path | str
) -> None:
    clock = Clock(berlin(10))
    async with running_engine(
        roster_plant(), state_location, clock, smtp_server, repeat_minutes=0
    ) as engine:
        await engine.handle([stopped(clock.now)])
        await ticks(engine, clock, 14)
        assert to(smtp_server.mails) == [email("anna")]
        await ticks(engine, clock, 1)  # 15 minutes after the alert
        assert to(smtp_server.mails) == [email("anna"), email("fatma")]
        await ticks(engine, clock, 30)  # 45 minutes
        await ticks(engine, clock, 120)  # the chain has ended: nothing more
        [alert] = engine.open_alerts()

    assert to(smtp_server.mails) == [email("anna"), email("fatma"), email("georg")]
    escalation = smtp_server.mails[1]
    assert subject(escalation).startswith("[critical] Not acknowledged: Final assembly line 1")
    assert "You get this as: area manager" in escalation.text()
    assert "Not acknowledged within 15 min by Anna Berger (shift lead)" in escalation.text()
    match = LINK.search(escalation.text())
    assert match is not None
    assert tokens(clock).verify(match.group(2), 3600 * 3) == (alert.ref, "fatma")
    assert "by Anna Berger (shift lead), Fatma Demir (area manager)" in smtp_server.mails[2].text()
    assert [(n.person, n.reason) for n in alert.notifications] == [
        ("anna", "alert"),
        ("fatma", "escalation"),
        ("georg", "escalation"),
    ]
    assert alert.next_escalation_at is None


async def test_acknowledged_before_the_next_level_nobody_else_is_alerted(
    smtp_server: SmtpServer, state_location: Path | str
) -> None:
    clock = Clock(berlin(10))
    async with running_engine(
        roster_plant(), state_location, clock, smtp_server, repeat_minutes=5
    ) as engine:
        await engine.handle([stopped(clock.now)])
        await ticks(engine, clock, 3)
        done = await engine.acknowledge(1, "anna", "link")
        await ticks(engine, clock, 60)  # past both levels and many reminder times
        with pytest.raises(AlreadyAcknowledged):
            await engine.acknowledge(1, "fatma", "link")
        with pytest.raises(UnknownAlert):
            await engine.acknowledge(99, "anna", "api")

    assert to(smtp_server.mails) == [email("anna")]
    assert done.alert.state == "acknowledged"
    assert (done.alert.acknowledged_by, done.alert.acknowledged_via) == ("anna", "link")
    assert done.alert.acknowledged_at == berlin(10, 3)
    assert done.alert.next_escalation_at is None and done.alert.next_repeat_at is None


async def test_reminders_go_to_the_level_alerted_last_every_repeat_minutes(
    smtp_server: SmtpServer, state_location: Path | str
) -> None:
    clock = Clock(berlin(10))
    async with running_engine(
        roster_plant(), state_location, clock, smtp_server, repeat_minutes=10
    ) as engine:
        await engine.handle([stopped(clock.now)])
        await ticks(engine, clock, 25)
        [alert] = engine.open_alerts()

    sent = [(n.person, n.reason, n.sent_at) for n in alert.notifications]
    assert sent == [
        ("anna", "alert", berlin(10)),
        ("anna", "repeat", berlin(10, 10)),
        ("fatma", "escalation", berlin(10, 15)),
        ("fatma", "repeat", berlin(10, 25)),  # ten minutes after the escalation
    ]
    assert to(smtp_server.mails) == [email(p) for p in ("anna", "anna", "fatma", "fatma")]
    assert subject(smtp_server.mails[1]).startswith("[critical] Reminder: Final assembly line 1")
    assert LINK.search(smtp_server.mails[1].text()) is not None


async def test_resolved_sends_one_notice_to_everyone_notified_and_the_alert_goes_to_history(
    smtp_server: SmtpServer, state_location: Path | str
) -> None:
    clock = Clock(berlin(10))
    async with running_engine(
        roster_plant(), state_location, clock, smtp_server, repeat_minutes=0
    ) as engine:
        await engine.handle([stopped(clock.now)])
        await ticks(engine, clock, 20)
        await engine.handle([running(clock.now)])
        await engine.settle()
        await ticks(engine, clock, 60)
        assert engine.open_alerts() == []
        assert engine.line_alerts() == {}
        [closed] = await asyncio.to_thread(engine.store.history, 10)
        with pytest.raises(AlertClosed):
            await engine.acknowledge(1, "anna", "link")

    sent = to(smtp_server.mails)
    assert sent[:2] == [email("anna"), email("fatma")]
    assert sorted(sent[2:]) == [email("anna"), email("fatma")]  # the resolved notices
    [notice] = [mail for mail in smtp_server.mails[2:] if to([mail]) == [email("anna")]]
    assert subject(notice) == (
        "[resolved] Final assembly line 1 stopped: no unit for 5 min (takt 60 s)"
    )
    assert "Resolved: 2026-11-25 10:20 (Europe/Berlin)" in notice.text()
    assert "fa1 running again: last unit 20 s ago" in notice.text()
    assert "Nobody acknowledged it." in notice.text()
    assert LINK.search(notice.text()) is None  # nothing to acknowledge
    assert (closed.id, closed.state, closed.resolved_at) == (1, "resolved", berlin(10, 20))
    assert [n.reason for n in closed.notifications] == [
        "alert",
        "escalation",
        "resolved",
        "resolved",
    ]
    assert all(n.result == "delivered" for n in closed.notifications)


async def test_a_restarted_engine_keeps_the_escalation_schedule_and_acknowledgements(
    smtp_server: SmtpServer, state_location: Path | str
) -> None:
    clock = Clock(berlin(10))
    fa2_stop = AlertKey("line_stopped", "line/fa2")
    plant = roster_plant()
    async with running_engine(plant, state_location, clock, smtp_server, repeat_minutes=0) as first:
        await first.handle([stopped(clock.now), stopped(clock.now, fa2_stop, "fa2")])
        await first.settle()
        await first.acknowledge(2, "Ben at the line", "api")
        await ticks(first, clock, 5)
    async with running_engine(
        plant, state_location, clock, smtp_server, repeat_minutes=0
    ) as second:
        restored = {a.id: (a.state, a.next_step, a.acknowledged_by) for a in second.open_alerts()}
        next_escalation = second.open_alerts()[0].next_escalation_at
        firing = second.firing()
        await second.handle([stopped(clock.now)])  # the evaluator may fire it again: deduped
        await ticks(second, clock, 9)  # 14 minutes after the alerts
        assert to(smtp_server.mails) == [email("anna")] * 3  # 2 alerts, 1 acknowledged notice
        await ticks(second, clock, 1)  # 15: the unacknowledged one escalates
        lines = second.line_alerts()

    assert to(smtp_server.mails) == [email("anna")] * 3 + [email("fatma")]
    told = smtp_server.mails[2]
    assert (
        subject(told)
        == "[acknowledged] Final assembly line 2 stopped: no unit for 5 min (takt 60 s)"
    )
    assert "Acknowledged by Ben at the line at 2026-11-25 10:00" in told.text()
    assert LINK.search(told.text()) is None
    assert "Final assembly line 1" in subject(smtp_server.mails[3])
    assert restored == {1: ("notified", 1, None), 2: ("acknowledged", 1, "Ben at the line")}
    assert next_escalation == berlin(10, 15)
    assert sorted(key for key, *_ in firing) == [FA1_STOP, fa2_stop]
    assert [(a.id, a.state) for a in lines["fa1"]] == [(1, "notified")]
    assert lines["fa1"][0].notified == ["Anna Berger", "Fatma Demir"]
    assert [(a.id, a.state, a.acknowledged_by) for a in lines["fa2"]] == [
        (2, "acknowledged", "Ben at the line")
    ]


async def test_after_the_shift_change_a_new_alert_goes_to_the_new_lead(
    smtp_server: SmtpServer, state_location: Path | str
) -> None:
    clock = Clock(berlin(13, 55))
    async with running_engine(roster_plant(), state_location, clock, smtp_server) as engine:
        await engine.handle([stopped(clock.now)])
        await ticks(engine, clock, 3)
        await engine.handle([running(clock.now)])
        await ticks(engine, clock, 7)  # 14:05, the late shift's crew B leads
        await engine.handle([stopped(clock.now)])
        await engine.settle()
        [alert] = engine.open_alerts()

    assert to(smtp_server.mails) == [email("anna"), email("anna"), email("ben")]
    assert (alert.id, alert.chain[0].person, alert.chain[0].due_at) == (2, "ben", berlin(14, 5))


async def test_with_no_lead_on_duty_the_first_escalation_level_is_alerted_at_once(
    smtp_server: SmtpServer, state_location: Path | str
) -> None:
    clock = Clock(berlin(10))
    paint_stop = AlertKey("line_stopped", "line/paint1")
    async with running_engine(roster_plant(), state_location, clock, smtp_server) as engine:
        await engine.handle([stopped(clock.now, paint_stop, "paint1")])  # paint has no rotation
        await engine.settle()

    [mail] = smtp_server.mails
    assert to([mail]) == [email("georg")]
    assert "You get this as: plant manager" in mail.text()


async def test_a_milestone_notice_goes_once_to_the_lead_and_is_never_open(
    smtp_server: SmtpServer, state_location: Path | str
) -> None:
    clock = Clock(berlin(10))
    key = AlertKey("milestone", "milestone/site-30m/30000000")
    notice = Transition(
        kind="notice",
        key=key,
        severity="info",
        at=clock.now,
        since=clock.now,
        message="Milestone reached: 30,000,000 vehicles on Final assembly line 1",
        lines=("fa1",),
    )
    async with running_engine(roster_plant(), state_location, clock, smtp_server) as engine:
        await engine.handle([notice])
        await ticks(engine, clock, 60)
        await engine.handle([notice])  # noticed already (the store says so)
        await engine.settle()
        assert engine.open_alerts() == []
        [noticed] = await asyncio.to_thread(engine.store.history, 10)

    [mail] = smtp_server.mails
    assert to([mail]) == [email("anna")]
    assert subject(mail) == "[info] Milestone reached: 30,000,000 vehicles on Final assembly line 1"
    assert LINK.search(mail.text()) is None
    assert (noticed.kind, noticed.state) == ("notice", "notice")


async def test_without_rosters_alerts_are_shown_but_not_sent(
    smtp_server: SmtpServer, state_location: Path | str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(berlin(10))
    caplog.set_level(logging.WARNING, logger="server.alerts.lifecycle")
    async with running_engine(
        roster_plant(rosters=False), state_location, clock, smtp_server
    ) as engine:
        await engine.handle([stopped(clock.now)])
        await ticks(engine, clock, 60)
        lines = engine.line_alerts()

    assert smtp_server.mails == []
    assert [(a.id, a.state, a.notified) for a in lines["fa1"]] == [(1, "firing", [])]
    warnings = [r.getMessage() for r in caplog.records if "rosters" in r.getMessage()]
    assert warnings == ["alerts: the plant has no rosters; alerts show, not sent"]


async def test_a_channel_that_cannot_be_used_is_logged_once_and_the_others_still_work(
    smtp_server: SmtpServer,
    state_location: Path | str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TAKTLINE_TEST_ANNA_HOOK", raising=False)
    plant = roster_plant({"anna": [{"url": {"env": "TAKTLINE_TEST_ANNA_HOOK"}}, email("anna")]})
    clock = Clock(berlin(10))
    caplog.set_level(logging.WARNING, logger="server.alerts.lifecycle")
    fa2_stop = AlertKey("line_stopped", "line/fa2")
    async with running_engine(plant, state_location, clock, smtp_server) as engine:
        await engine.handle([stopped(clock.now), stopped(clock.now, fa2_stop, "fa2")])
        await engine.settle()

    assert to(smtp_server.mails) == [email("anna"), email("anna")]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "channel 1 of anna" in warnings[0] and "TAKTLINE_TEST_ANNA_HOOK" in warnings[0]


async def test_a_store_that_cannot_be_written_delays_no_mail_and_refuses_acknowledgements(
    smtp_server: SmtpServer, state_location: Path | str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(berlin(10))
    caplog.set_level(logging.ERROR, logger="server.alerts.lifecycle")
    async with running_engine(roster_plant(), state_location, clock, smtp_server) as engine:
        engine.store.store.close()  # the file is gone from under the engine
        await engine.handle([stopped(clock.now)])
        await engine.settle()
        await ticks(engine, clock, 15)
        with pytest.raises(StoreError):
            await engine.acknowledge(1, "anna", "link")
        [alert] = engine.open_alerts()

    assert to(smtp_server.mails) == [email("anna"), email("fatma")]
    assert (alert.state, alert.acknowledged_by) == ("notified", None)
    errors = [r.getMessage() for r in caplog.records]
    assert len(errors) == 1 and "kept in memory and written again" in errors[0]


async def test_messages_a_stop_left_unanswered_are_sent_again_after_the_restart(
    state_location: Path | str,
) -> None:
    clock = Clock(berlin(10))
    plant = roster_plant()
    port = free_port()
    async with relay_down(plant, state_location, clock, port) as first:
        await first.handle([stopped(clock.now)])
        await asyncio.sleep(0.5)
    clock.advance(minutes=2)
    with run_smtp(port=port) as smtp_server:  # the relay is back
        async with running_engine(plant, state_location, clock, smtp_server) as second:
            await second.settle()
            [alert] = second.open_alerts()

    [mail] = smtp_server.mails
    assert to([mail]) == [email("anna")]
    assert subject(mail) == (
        "[critical] Final assembly line 1 stopped: no unit for 5 min (takt 60 s)"
    )
    assert LINK.search(mail.text()) is not None
    assert [(n.person, n.reason, n.result) for n in alert.notifications] == [
        ("anna", "alert", "interrupted"),
        ("anna", "alert", "delivered"),
    ]
    assert alert.notifications[0].channel == alert.notifications[1].channel
    assert alert.state == "notified"


async def test_an_acknowledged_alert_is_not_sent_again_after_the_restart(
    smtp_server: SmtpServer, state_location: Path | str
) -> None:
    clock = Clock(berlin(10))
    plant = roster_plant()
    async with relay_down(plant, state_location, clock, free_port()) as first:
        await first.handle([stopped(clock.now)])
        await first.acknowledge(1, "Ben at the line", "api")
    async with running_engine(plant, state_location, clock, smtp_server) as second:
        await second.settle()
        [alert] = second.open_alerts()

    assert smtp_server.mails == []
    assert {n.result for n in alert.notifications} == {"interrupted"}
