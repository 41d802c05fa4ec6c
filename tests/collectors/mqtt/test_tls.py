"""TLS with a test CA and a client certificate, and a password from a file, on a real broker."""

from __future__ import annotations

from pathlib import Path

import aiomqtt
import pytest

from collectors.mqtt import MqttCollector
from collectors.support import Backoff
from taktline.mqttclient import tls_context
from tests.collectors.helpers import wait_for
from tests.collectors.mqtt.helpers import mqtt_source, running, take
from tests.collectors.mqtt.pki import Pki
from tests.fixtures.services import MosquittoService


async def test_tls_with_a_client_certificate_and_a_password_file(
    tls_broker: MosquittoService, pki: Pki, tmp_path: Path
) -> None:
    (tmp_path / "password").write_text("s3cret\n")
    tls = {
        "ca_file": str(pki.ca),
        "cert_file": str(pki.client_cert),
        "key_file": str(pki.client_key),
    }
    broker = {"tls": tls, "username": "edge", "password": {"file": str(tmp_path / "password")}}
    source = mqtt_source(
        tls_broker, broker=broker, topics=[{"topic": "t/1", "counter": "s/a/l/st/c"}]
    )
    settings = source.broker.tls
    assert settings is not None
    async with (
        running(source) as collector,
        aiomqtt.Client(
            tls_broker.host,
            tls_broker.port,
            username="edge",
            password="s3cret",
            tls_context=tls_context(settings),
        ) as device,
    ):
        await device.publish("t/1", b"42", qos=1)
        (reading,) = await take(collector, 1)
    assert reading.value == 42


@pytest.mark.parametrize("problem", ["no_client_cert", "wrong_password", "env_unset"])
async def test_refused_connections_are_reported_and_retried(
    tls_broker: MosquittoService, pki: Pki, problem: str
) -> None:
    tls: dict[str, str] = {"ca_file": str(pki.ca)}
    if problem != "no_client_cert":
        tls |= {"cert_file": str(pki.client_cert), "key_file": str(pki.client_key)}
    variable = "TAKTLINE_TEST_UNSET" if problem == "env_unset" else "TAKTLINE_TEST_WRONG"
    broker = {"tls": tls, "username": "edge", "password": {"env": variable}}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TAKTLINE_TEST_WRONG", "wrong")
        env.delenv("TAKTLINE_TEST_UNSET", raising=False)
        source = mqtt_source(
            tls_broker, broker=broker, topics=[{"topic": "t", "counter": "s/a/l/st/c"}]
        )
        async with MqttCollector(source, backoff=Backoff(0.05, 0.2)) as collector:
            await wait_for(lambda: collector.health.last_error is not None, "failure reported")
            assert not collector.health.connected
    error = collector.health.last_error or ""
    assert "wrong" not in error  # the secret is never shown
    if problem == "env_unset":
        assert "TAKTLINE_TEST_UNSET is not set" in error
