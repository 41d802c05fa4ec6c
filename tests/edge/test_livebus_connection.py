"""The live bus's own MQTT client against real Mosquitto brokers: TLS, passwords, 3.1.1, hangs."""

from __future__ import annotations

import asyncio
import logging
import re
import signal
from pathlib import Path

import aiomqtt
import pytest

from edge.sinks.forwarder import Backoff
from edge.sinks.livebus import LiveBusSink
from taktline.livebus import COUNTER_SUBSCRIPTION
from taktline.model.connections import MqttConnection, TlsSettings
from taktline.mqttclient import tls_context
from tests.collectors.mqtt.pki import Pki
from tests.edge.helpers import until, update
from tests.edge.test_livebus import body, collect
from tests.fixtures.services import MosquittoService

FAST = Backoff(initial_s=0.2, max_s=1.0)


def tls_connection(broker: MosquittoService, pki: Pki, password_file: Path) -> MqttConnection:
    return MqttConnection.model_validate(
        {
            "host": broker.host,
            "port": broker.port,
            "username": "edge",
            "password": {"file": str(password_file)},
            "tls": {
                "ca_file": str(pki.ca),
                "cert_file": str(pki.client_cert),
                "key_file": str(pki.client_key),
            },
        }
    )


async def test_tls_with_a_client_certificate_and_a_password_file(
    tls_broker: MosquittoService, pki: Pki, tmp_path: Path
) -> None:
    (tmp_path / "password").write_text("s3cret\n")
    connection = tls_connection(tls_broker, pki, tmp_path / "password")
    sink = LiveBusSink(connection, "edge-1", ["fa1"], FAST)
    async with sink:
        await until(lambda: sink.health.connected)
        await sink.send([update(1234)])
    tls = TlsSettings(ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key)
    async with (
        aiomqtt.Client(
            tls_broker.host,
            tls_broker.port,
            username="edge",
            password="s3cret",
            tls_context=tls_context(tls),
        ) as reader,
        asyncio.timeout(10),
    ):
        await reader.subscribe(COUNTER_SUBSCRIPTION, qos=1)
        message = await anext(aiter(reader.messages))
    assert message.retain and body(message)["total"] == 1234


async def test_a_wrong_password_is_named_logged_once_and_retried_with_backoff(
    tls_broker: MosquittoService, pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "password").write_text("wrong\n")
    connection = tls_connection(tls_broker, pki, tmp_path / "password")
    sink = LiveBusSink(connection, "edge-1", ["fa1"], Backoff(initial_s=0.2, max_s=0.4))
    with caplog.at_level(logging.WARNING, logger="edge.sinks.livebus"):
        async with sink:
            await until(lambda: sink.health.last_error is not None)
            await asyncio.sleep(2.0)
            assert not sink.health.connected
    assert re.search("not authorized|bad user name or password", sink.health.last_error or "")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # logged once however often it is retried
    assert "wrong" not in caplog.text  # the secret never reaches the log


async def test_mqtt_311_publishes_retained_totals_and_the_status(
    mosquitto: MosquittoService,
) -> None:
    connection = MqttConnection(host=mosquitto.host, port=mosquitto.port, protocol="3.1.1")
    sink = LiveBusSink(connection, "edge-3", ["fa1"], FAST)
    async with sink:
        await until(lambda: sink.health.connected)
        assert sink.window == 999  # no Receive Maximum in 3.1.1: the sink's own window
        await sink.send([update(total) for total in range(1, 1501)])
    (message,) = await collect(mosquitto, COUNTER_SUBSCRIPTION, 1)
    assert body(message)["total"] == 1500


async def test_a_broker_that_hangs_without_closing_is_given_up_and_reconnected(
    mosquitto: MosquittoService,
) -> None:
    """SIGSTOP: the socket stays open and nothing answers; keepalive (5 s) notices in ~7.5 s."""
    connection = MqttConnection(host=mosquitto.host, port=mosquitto.port, keepalive_s=5)
    sink = LiveBusSink(connection, "edge-1", ["fa1"], FAST)
    assert mosquitto.process is not None
    async with sink:
        await until(lambda: sink.health.connected)
        mosquitto.process.send_signal(signal.SIGSTOP)
        try:
            await until(lambda: not sink.health.connected, 15)
            assert "no answer from the broker" in (sink.health.last_error or "")
        finally:
            mosquitto.process.send_signal(signal.SIGCONT)
        await until(lambda: sink.health.connected, 15)
        await sink.send([update(77)])
    (message,) = await collect(mosquitto, COUNTER_SUBSCRIPTION, 1)
    assert body(message)["total"] == 77
