"""The notifier against a real SMTP server (aiosmtpd) and a real HTTP webhook receiver."""

from __future__ import annotations

import asyncio
import base64
import logging
import random

import pytest

from server.alerts.channels import Channel, channel_for
from server.alerts.notifier import Delivery, Message, Notifier
from taktline.config.settings import RetryPolicy, SmtpSettings
from taktline.model.secrets import SecretRef
from tests.fixtures.smtp import SmtpServer, run_smtp
from tests.fixtures.webhook import WebhookReceiver

FAST = RetryPolicy(max_attempts=3, min_backoff_s=0.01, max_backoff_s=0.05, attempt_timeout_s=30)
ACK = "https://taktline.plant.example/alerts/ack/WyJsaW5lMyJd.aBc.dEf"


def stopped(seq: int = 1) -> Message:
    return Message(
        id=f"fa1/stopped#{seq}",
        title=f"FA1 stopped ({seq})",
        body="Line FA1 has produced nothing for 10 minutes (early shift).",
        ack_url=ACK,
    )


def relay(server: SmtpServer, **extra: object) -> SmtpSettings:
    return SmtpSettings.model_validate(
        {"host": server.host, "port": server.port, "from": "taktline@plant.example"}
        | {"starttls": False}
        | extra
    )


def hook(receiver: WebhookReceiver, auth: str = "", query: str = "") -> Channel:
    return Channel.from_url(f"json://{auth}127.0.0.1:{receiver.port}/alerts/hook{query}")


class Deliveries:
    """The notifier's `on_result`: keeps each Delivery; tests wait for one."""

    def __init__(self) -> None:
        self.items: list[Delivery] = []
        self._changed = asyncio.Event()

    def __call__(self, delivery: Delivery) -> None:
        self.items.append(delivery)
        self._changed.set()

    def of(self, channel: Channel) -> list[Delivery]:
        return [d for d in self.items if d.channel == channel]

    async def wait_for(self, message_id: str, channel: Channel) -> Delivery:
        async with asyncio.timeout(10):
            while True:
                for delivery in self.of(channel):
                    if delivery.message_id == message_id:
                        return delivery
                self._changed.clear()
                await self._changed.wait()


async def test_the_shift_lead_gets_exactly_one_mail_with_title_body_and_ack_link(
    smtp_server: SmtpServer,
) -> None:
    lead = channel_for("anna.berg@plant.example", relay(smtp_server))
    results = Deliveries()
    async with Notifier(FAST, on_result=results) as notifier:
        notifier.send(stopped(), [lead, lead])  # the same channel twice is one mail
        await notifier.join()

    [mail] = await asyncio.to_thread(smtp_server.wait_for_mails, 1)
    assert len(smtp_server.mails) == 1
    assert mail.rcpt_tos == ["anna.berg@plant.example"]
    assert mail.mail_from == "taktline@plant.example"
    assert mail.message["Subject"] == "FA1 stopped (1)"
    assert "produced nothing for 10 minutes" in mail.text()
    assert ACK in mail.text()
    assert results.items == [Delivery("fa1/stopped#1", lead, True, 1)]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_the_relay_login_comes_from_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAKTLINE_TEST_SMTP_PASSWORD", "p@ss w:rd/1")
    with run_smtp(credentials=("taktline", "p@ss w:rd/1")) as server:
        settings = relay(
            server, username="taktline", password=SecretRef(env="TAKTLINE_TEST_SMTP_PASSWORD")
        )
        lead = channel_for("anna.berg@plant.example", settings)
        async with Notifier(FAST) as notifier:
            notifier.send(stopped(), [lead])
            await notifier.join()
            assert notifier.stats()[lead].delivered == 1
        await asyncio.to_thread(server.wait_for_mails, 1)
    assert server.logins == [("taktline", "p@ss w:rd/1")]
    assert "p@ss" not in repr(lead) and "p@ss" not in str(lead)


async def test_a_webhook_receives_title_and_text_as_json(webhook: WebhookReceiver) -> None:
    channel = hook(webhook)
    results = Deliveries()
    async with Notifier(FAST, on_result=results) as notifier:
        notifier.send(stopped(), [channel])
        await notifier.join()

    [request] = webhook.requests
    assert request.path == "/alerts/hook"
    assert request.body["title"] == "FA1 stopped (1)"
    assert request.body["message"] == stopped().text()
    assert results.of(channel) == [Delivery("fa1/stopped#1", channel, True, 1)]


async def test_a_dead_channel_is_retried_and_reported_failed_without_delaying_the_mail(
    smtp_server: SmtpServer, webhook: WebhookReceiver
) -> None:
    webhook.status = 500
    webhook.gate.clear()  # the hook hangs until the mail is in
    dead = hook(webhook, query="?rto=30")
    lead = channel_for("anna.berg@plant.example", relay(smtp_server))
    results = Deliveries()
    async with Notifier(FAST, on_result=results) as notifier:
        notifier.send(stopped(), [dead, lead])
        await asyncio.to_thread(webhook.wait_for_requests, 1)

        await asyncio.to_thread(smtp_server.wait_for_mails, 1)
        assert results.of(dead) == []  # its first attempt is still hanging
        assert (await results.wait_for("fa1/stopped#1", lead)).delivered

        webhook.gate.set()
        failed = await results.wait_for("fa1/stopped#1", dead)
        assert failed.delivered is False
        assert failed.attempts == FAST.max_attempts
        assert failed.error is not None and "500" in failed.error
        assert len(webhook.requests) == FAST.max_attempts
        stats = notifier.stats()
        assert (stats[dead].failed, stats[dead].delivered, stats[dead].failing) == (1, 0, True)
        assert (stats[lead].failed, stats[lead].delivered) == (0, 1)


async def test_a_failure_is_logged_once_and_the_recovery_once_without_secrets(
    webhook: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    webhook.status = 500
    channel = hook(webhook, auth="ops:Pa55w0rdXYZ@", query="?+X-Token=HdrT0kenXYZ")
    results = Deliveries()
    async with Notifier(FAST, on_result=results) as notifier:
        notifier.send(stopped(1), [channel])
        notifier.send(stopped(2), [channel])
        await notifier.join()
        webhook.status = 200
        notifier.send(stopped(3), [channel])
        await notifier.join()
        stats = notifier.stats()[channel]

    assert [(d.message_id, d.delivered) for d in results.items] == [
        ("fa1/stopped#1", False),
        ("fa1/stopped#2", False),
        ("fa1/stopped#3", True),
    ]
    assert (stats.failed, stats.delivered, stats.failing) == (2, 1, False)
    ours = [r for r in caplog.records if r.name == "server.alerts.notifier"]
    assert [r.levelno for r in ours] == [logging.WARNING, logging.INFO]
    assert str(channel) in ours[0].getMessage() and "500" in ours[0].getMessage()
    # the secrets went where they belong, and nowhere else
    assert webhook.requests[0].headers["X-Token"] == "HdrT0kenXYZ"
    assert (
        base64.b64encode(b"ops:Pa55w0rdXYZ").decode()
        in webhook.requests[0].headers["Authorization"]
    )
    shown = [caplog.text, repr(channel), *(str(d.error) for d in results.items)]
    assert not [text for text in shown if "Pa55w0rdXYZ" in text or "HdrT0kenXYZ" in text]


async def test_an_attempt_without_answer_fails_after_the_attempt_timeout(
    webhook: WebhookReceiver,
) -> None:
    webhook.gate.clear()
    channel = hook(webhook, query="?rto=30")
    results = Deliveries()
    policy = FAST.model_copy(update={"max_attempts": 1, "attempt_timeout_s": 0.2})
    async with Notifier(policy, on_result=results) as notifier:
        notifier.send(stopped(), [channel])
        failed = await results.wait_for("fa1/stopped#1", channel)
    assert failed.delivered is False
    assert failed.error == "no answer within 0.2 s"


async def test_a_full_queue_drops_the_oldest_waiting_message(webhook: WebhookReceiver) -> None:
    webhook.gate.clear()
    channel = hook(webhook, query="?rto=30")
    results = Deliveries()
    policy = FAST.model_copy(update={"queue_size": 1})
    async with Notifier(policy, on_result=results) as notifier:
        notifier.send(stopped(1), [channel])
        await asyncio.to_thread(webhook.wait_for_requests, 1)  # 1 is in flight
        notifier.send(stopped(2), [channel])  # waits
        notifier.send(stopped(3), [channel])  # the queue is full: 2 is dropped
        dropped = await results.wait_for("fa1/stopped#2", channel)
        webhook.gate.set()
        await notifier.join()
        stats = notifier.stats()[channel]

    assert (dropped.delivered, dropped.attempts) == (False, 0)
    assert [r.body["title"] for r in webhook.requests] == ["FA1 stopped (1)", "FA1 stopped (3)"]
    assert (stats.delivered, stats.dropped, stats.failed) == (2, 1, 0)


async def test_send_after_close_is_refused(webhook: WebhookReceiver) -> None:
    notifier = Notifier(FAST)
    await notifier.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        notifier.send(stopped(), [hook(webhook)])


async def test_closing_with_messages_queued_sends_none_of_them_and_join_returns(
    webhook: WebhookReceiver,
) -> None:
    webhook.gate.clear()
    channel = hook(webhook, query="?rto=30")
    notifier = Notifier(FAST)
    notifier.send(stopped(1), [channel])
    await asyncio.to_thread(webhook.wait_for_requests, 1)  # 1 is in flight
    notifier.send(stopped(2), [channel])
    notifier.send(stopped(3), [channel])
    await notifier.aclose()
    webhook.gate.set()
    async with asyncio.timeout(10):  # a closed notifier's queues are empty, not waiting
        await notifier.join()
    await asyncio.sleep(0.2)

    assert [r.body["title"] for r in webhook.requests] == ["FA1 stopped (1)"]


def test_the_message_text_ends_with_the_ack_link() -> None:
    assert stopped().text().endswith(f"\n\nAcknowledge: {ACK}")
    assert Message("k#1", "t", "body").text() == "body"


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    policy = RetryPolicy(min_backoff_s=1, max_backoff_s=8)
    rng = random.Random(7)
    for failures, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 8), (80, 8)]:
        delays = [policy.backoff_s(failures, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # jittered, not one fixed value


async def test_a_failing_result_callback_is_logged_and_the_lane_goes_on(
    webhook: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    channel = hook(webhook)

    def broken(delivery: Delivery) -> None:
        raise ValueError(f"engine bug on {delivery.message_id}")

    async with Notifier(FAST, on_result=broken) as notifier:
        notifier.send(stopped(1), [channel])
        notifier.send(stopped(2), [channel])
        await notifier.join()
        assert notifier.stats()[channel].delivered == 2
    assert len(webhook.requests) == 2
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.exc_info[1].args[0] for r in errors if r.exc_info and r.exc_info[1]] == [
        "engine bug on fa1/stopped#1",
        "engine bug on fa1/stopped#2",
    ]
