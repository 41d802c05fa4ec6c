"""Two server replicas on one real PostgreSQL store: one runs the alerts (the lease), the other
follows; acknowledgements on either stop escalation; the lease passes on when its holder goes;
a real SMTP server (aiosmtpd) counts the mails."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from server.alerts.alert_store import AlertStore
from server.alerts.lease import LEASE_KEY, PostgresLease, lease_for
from server.alerts.lifecycle import AlertEngine, AlreadyAcknowledged
from server.store import StateStore
from tests.alerts.plants import FAST, berlin, email, roster_plant
from tests.alerts.test_lifecycle import (
    PUBLIC_URL,
    Clock,
    relay,
    stopped,
    to,
    tokens,
)
from tests.fixtures.postgres import PostgresService
from tests.fixtures.smtp import SmtpServer

PATIENT_S = 60.0
"""The lease's check timeout here: a loaded CI machine must not look like a lost database."""


@asynccontextmanager
async def replica(
    url: str, clock: Clock, smtp: SmtpServer, **options: Any
) -> AsyncIterator[tuple[AlertEngine, PostgresLease]]:
    """One replica's alert engine and lease on the shared store (not yet running or
    following: the test decides, as the server's evaluation loop does)."""
    store = StateStore(url)
    lease = lease_for(store.database, PATIENT_S)
    assert isinstance(lease, PostgresLease)
    engine = AlertEngine(
        roster_plant(),
        AlertStore(store),
        clock=clock,
        policy=FAST,
        smtp=relay(smtp),
        tokens=tokens(clock),
        public_url=PUBLIC_URL,
        **options,
    )
    try:
        yield engine, lease
    finally:
        await engine.aclose()
        await lease.release()
        store.close()


def end_lease_session(postgres: PostgresService, url: str) -> None:
    """End the lease holder's session and wait until its backend is gone (as it is, with its
    lock, long before a surviving replica's next period)."""
    with postgres.connect(url) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks"
            " WHERE locktype = 'advisory' AND granted"
        )


async def step(engine: AlertEngine, lease: PostgresLease) -> bool:
    """One evaluation period of the server: run the alerts when holding the lease, else
    follow the store (as `server.app.Server._lead_or_follow`)."""
    if await lease.held():
        if not engine.leading:
            await engine.take_over()
        return True
    if engine.leading:
        await engine.stand_by()
    await engine.follow()
    return False


@asynccontextmanager
async def a_runs_b_follows(
    url: str, clock: Clock, smtp: SmtpServer, **options: Any
) -> AsyncIterator[tuple[AlertEngine, PostgresLease, AlertEngine, PostgresLease]]:
    """Replica a holds the lease and has raised fa1's stop alert (the lead's mail sent); b
    follows."""
    async with (
        replica(url, clock, smtp, **options) as (a, a_lease),
        replica(url, clock, smtp, **options) as (b, b_lease),
    ):
        assert await step(a, a_lease) and not await step(b, b_lease)
        await a.handle([stopped(clock.now)])
        await a.settle()
        yield a, a_lease, b, b_lease


async def minutes(clock: Clock, count: int, *engines: AlertEngine) -> None:
    """Move the clock a minute at a time; the running engine ticks, the others follow."""
    for _ in range(count):
        clock.advance(minutes=1)
        for engine in engines:
            if engine.leading:
                await engine.tick()
                await engine.settle()
            else:
                await engine.follow()


async def test_one_lease_at_a_time_and_it_passes_on_when_released(
    postgres: PostgresService,
) -> None:
    url = postgres.new_database()
    store = StateStore(url)
    try:
        one, two = lease_for(store.database, PATIENT_S), lease_for(store.database, PATIENT_S)
        assert await one.held() is True
        assert await two.held() is False
        assert await one.held() is True  # kept
        await one.release()
        assert await two.held() is True
        assert await one.held() is False
        await two.release()
    finally:
        store.close()


async def test_a_holder_whose_session_ends_loses_the_lease_to_the_other(
    postgres: PostgresService,
) -> None:
    url = postgres.new_database()
    store = StateStore(url)
    try:
        one, two = lease_for(store.database, PATIENT_S), lease_for(store.database, PATIENT_S)
        assert await one.held() and not await two.held()
        end_lease_session(postgres, url)  # the holder's session is killed
        assert await one.held() is False
        assert await two.held() is True
        with postgres.connect(url) as admin:
            holders = admin.execute(
                "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks"
                " WHERE locktype = 'advisory' AND granted AND database ="
                " (SELECT oid FROM pg_database WHERE datname = current_database())"
            ).fetchall()
        assert holders == [(LEASE_KEY,)]
        await one.release()
        await two.release()
    finally:
        store.close()


async def test_a_follower_shows_the_alert_and_its_acknowledgement_stops_escalation(
    smtp_server: SmtpServer, postgres: PostgresService
) -> None:
    url = postgres.new_database()
    clock = Clock(berlin(10))
    async with a_runs_b_follows(url, clock, smtp_server) as (a, _, b, _):
        await b.follow()
        [shown] = b.open_alerts()
        assert (shown.id, shown.state, b.line_alerts()["fa1"][0].id) == (1, "notified", 1)

        clock.advance(minutes=5)
        done = await b.acknowledge(1, "anna", "link")
        assert (done.alert.state, done.alert.acknowledged_by) == ("acknowledged", "anna")
        try:
            await a.acknowledge(1, "ben", "api")
            raise AssertionError("a second acknowledgement was taken")
        except AlreadyAcknowledged as refused:
            assert refused.alert.acknowledged_by == "anna"
        await minutes(clock, 60, a, b)
        [stored] = b.open_alerts()

    assert to(smtp_server.mails) == [email("anna")]  # no escalation to the area manager
    assert (stored.state, stored.acknowledged_by, stored.acknowledged_via) == (
        "acknowledged",
        "anna",
        "link",
    )
    assert a.acknowledged.total() == 0 and b.acknowledged.total() == 1


async def test_the_running_engine_never_writes_an_acknowledgement_back(
    smtp_server: SmtpServer, postgres: PostgresService
) -> None:
    """The running engine's copy still says 'notified' when the follower acknowledges; its
    next write of the alert (a reminder) must not take the acknowledgement back."""
    url = postgres.new_database()
    clock = Clock(berlin(10))
    async with a_runs_b_follows(url, clock, smtp_server, repeat_minutes=1) as (a, _, b, _):
        [alert] = a.open_alerts()
        await b.acknowledge(1, "anna", "link")
        clock.advance(minutes=2)
        alert.next_repeat_at = clock.now  # as if the reminder was due before the adoption
        a.store.save([alert])
        stored = await b.find(1)

    assert stored is not None
    assert (stored.state, stored.acknowledged_by, stored.next_repeat_at) == (
        "acknowledged",
        "anna",
        None,
    )


async def test_when_the_running_replica_goes_the_other_escalates_on_schedule_once(
    smtp_server: SmtpServer, postgres: PostgresService
) -> None:
    url = postgres.new_database()
    clock = Clock(berlin(10))
    async with replica(url, clock, smtp_server, repeat_minutes=0) as (b, b_lease):
        async with replica(url, clock, smtp_server, repeat_minutes=0) as (a, a_lease):
            assert await step(a, a_lease) and not await step(b, b_lease)
            await a.handle([stopped(clock.now)])
            await a.settle()
            await minutes(clock, 5, a, b)
        # replica a is gone (its lease session closed): b takes over at its next period
        assert await step(b, b_lease) is True
        await minutes(clock, 60, b)
        [alert] = b.open_alerts()

    assert to(smtp_server.mails) == [email("anna"), email("fatma"), email("georg")]
    assert [(n.person, n.reason) for n in alert.notifications] == [
        ("anna", "alert"),
        ("fatma", "escalation"),
        ("georg", "escalation"),
    ]
    sent = [n.sent_at - berlin(10) for n in alert.notifications]
    assert sent == [dt.timedelta(0), dt.timedelta(minutes=15), dt.timedelta(minutes=45)]


async def test_a_replica_that_loses_the_lease_stops_sending(
    smtp_server: SmtpServer, postgres: PostgresService
) -> None:
    url = postgres.new_database()
    clock = Clock(berlin(10))
    async with a_runs_b_follows(url, clock, smtp_server, repeat_minutes=0) as (
        a,
        a_lease,
        b,
        b_lease,
    ):
        end_lease_session(postgres, url)  # a's lease session ends (network, PG restart)
        clock.advance(minutes=20)
        assert await step(a, a_lease) is False  # a notices first, stands by
        assert not a.leading
        assert await step(b, b_lease) is True
        await b.tick()
        await b.settle()
        [alert] = b.open_alerts()

    assert to(smtp_server.mails) == [email("anna"), email("fatma")]
    assert [n.reason for n in alert.notifications] == ["alert", "escalation"]


async def test_an_acknowledgement_on_the_follower_is_told_to_the_others_by_the_running_one(
    smtp_server: SmtpServer, postgres: PostgresService
) -> None:
    url = postgres.new_database()
    clock = Clock(berlin(10))
    async with a_runs_b_follows(url, clock, smtp_server, repeat_minutes=0) as (a, _, b, _):
        await minutes(clock, 16, a, b)  # the area manager got the escalation
        await b.acknowledge(1, "fatma", "link")
        await minutes(clock, 1, a, b)  # a adopts it and tells anna
        await minutes(clock, 60, a, b)  # nothing more: no georg at 45 minutes

    assert to(smtp_server.mails) == [email("anna"), email("fatma"), email("anna")]
    told = smtp_server.mails[2]
    assert str(told.message["Subject"]).startswith("[acknowledged] Final assembly line 1")
    assert "Acknowledged by Fatma Demir at 2026-11-25 10:16" in told.text()
