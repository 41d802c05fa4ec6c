"""Basic256Sha256 SignAndEncrypt with a client certificate and a username/password secret."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from asyncua import ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.x509 import ObjectIdentifier
from cryptography.x509.oid import ExtendedKeyUsageOID

from collectors.opcua import OpcUaCollector
from collectors.support import Backoff
from taktline.localbroker import free_port
from taktline.model.sources import OpcUaSource
from tests.collectors.helpers import collect_until, wait_for
from tests.collectors.plc import PlcServer, Security

SECRET = "s3cret-for-the-line"


async def certificate(folder: Path, name: str, uri: str, use: ObjectIdentifier) -> Security:
    key, cert = folder / f"{name}-key.pem", folder / f"{name}-cert.der"
    await setup_self_signed_certificate(
        key, cert, uri, "127.0.0.1", [use], {"organizationName": name}
    )
    return Security(cert, key, {"edge": SECRET})


@pytest.fixture
async def secure_plc(tmp_path: Path) -> AsyncIterator[PlcServer]:
    plc = PlcServer(free_port(), {"Secure.Passed": (ua.VariantType.UInt32, 4242)})
    plc.security = await certificate(
        tmp_path, "server", "urn:test:plc", ExtendedKeyUsageOID.SERVER_AUTH
    )
    await plc.start()
    yield plc
    await plc.stop()


async def secure_source(plc: PlcServer, folder: Path, password_env: str) -> OpcUaSource:
    client = await certificate(
        folder, "edge", "urn:plant:edge-fa1", ExtendedKeyUsageOID.CLIENT_AUTH
    )
    assert plc.security is not None
    return OpcUaSource.model_validate(
        {
            "type": "opcua",
            "id": "eol-secure",
            "endpoint": plc.endpoint,
            "username": "edge",
            "password": {"env": password_env},
            "security": {
                "policy": "Basic256Sha256",
                "mode": "SignAndEncrypt",
                "certificate": str(client.certificate),
                "private_key": str(client.private_key),
                "server_certificate": str(plc.security.certificate),
            },
            "publishing_interval_ms": 50,
            "nodes": [{"node": plc.address("Secure.Passed"), "counter": "s/a/l/st/passed"}],
        }
    )


async def test_an_encrypted_session_with_user_and_password_delivers_values(
    secure_plc: PlcServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAKTLINE_TEST_OPCUA_PASSWORD", SECRET)
    source = await secure_source(secure_plc, tmp_path, "TAKTLINE_TEST_OPCUA_PASSWORD")
    async with OpcUaCollector(source, backoff=Backoff(0.1, 1.0)) as collector:
        got = await collect_until(collector.readings(), lambda seen: seen[-1].value == 4242)
        assert got[-1].address == secure_plc.address("Secure.Passed")
        assert secure_plc.sessions_created == 1


async def test_a_wrong_password_is_reported_without_the_secret(
    secure_plc: PlcServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("TAKTLINE_TEST_OPCUA_PASSWORD", "wrong-" + SECRET)
    source = await secure_source(secure_plc, tmp_path, "TAKTLINE_TEST_OPCUA_PASSWORD")
    caplog.set_level(logging.DEBUG, logger="collectors")
    async with OpcUaCollector(source, backoff=Backoff(0.1, 1.0)) as collector:
        await wait_for(lambda: collector.health.last_error is not None, "the refusal")
        assert not collector.health.connected
        assert "BadUserAccessDenied" in (collector.health.last_error or ""), (
            collector.health.last_error
        )
    assert SECRET not in caplog.text
    assert SECRET not in (collector.health.last_error or "")
