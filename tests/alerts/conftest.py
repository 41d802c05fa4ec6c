"""Alert test fixtures: a real SMTP server and a real HTTP webhook receiver on free ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.smtp import SmtpServer, run_smtp
from tests.fixtures.webhook import WebhookReceiver, run_webhook_receiver


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """An aiosmtpd server that accepts any mail and keeps it."""
    with run_smtp() as server:
        yield server


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    """An HTTP server that keeps every POST and answers `webhook.status` (200)."""
    with run_webhook_receiver() as receiver:
        yield receiver
