"""Secure sessions end to end: policies and modes, passwords, user certificates, server trust."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.uaerrors import BadUserAccessDenied
from cryptography.x509.oid import ExtendedKeyUsageOID

from collectors.opcua import OpcUaCollector
from collectors.opcua.connection import build_client, configuration_error
from collectors.opcua.pki import thumbprint
from collectors.support import Backoff
from taktline.model.sources import OpcUaSource
from tests.collectors.helpers import collect_until, wait_for
from tests.collectors.opcua.secure_server import KeyPair, SecureServer, key_pair, server_pair

SECRET = "s3cret-for-the-line"
PASSWORD_ENV = "TAKTLINE_TEST_OPCUA_PASSWORD"
Policy = ua.SecurityPolicyType

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass(frozen=True)
class Bench:
    """One server for the module: every policy and mode under test, users and user certificates."""

    plc: SecureServer
    server: KeyPair
    operator: KeyPair
    stranger: KeyPair


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bench(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Bench]:
    folder = tmp_path_factory.mktemp("certs")
    server = await server_pair(folder, "plc")
    use = ExtendedKeyUsageOID.CLIENT_AUTH
    operator = await key_pair(folder, "operator", "urn:plant:user", use)
    stranger = await key_pair(folder, "other", "urn:plant:other", use)
    plc = SecureServer(
        server,
        [
            Policy.Basic256Sha256_SignAndEncrypt,
            Policy.Aes128Sha256RsaOaep_SignAndEncrypt,
            Policy.Aes256Sha256RsaPss_SignAndEncrypt,
            Policy.Aes256Sha256RsaPss_Sign,
        ],
        tokens=[ua.UserNameIdentityToken, ua.X509IdentityToken],
        users={"edge": SECRET},
        user_certificates=[operator.der],
    )
    await plc.start()
    yield Bench(plc, server, operator, stranger)
    await plc.stop()


def source(plc: SecureServer, *, security: dict[str, Any], **keys: Any) -> OpcUaSource:
    return OpcUaSource.model_validate(
        {
            "type": "opcua",
            "id": "eol-secure",
            "endpoint": plc.endpoint,
            "security": security,
            "publishing_interval_ms": 50,
            "nodes": [{"node": plc.address, "counter": "s/a/l/st/passed"}],
            **keys,
        }
    )


def with_password(plc: SecureServer, policy: str, mode: str, **security: Any) -> OpcUaSource:
    return source(
        plc,
        security={"policy": policy, "mode": mode, **security},
        username="edge",
        password={"env": PASSWORD_ENV},
    )


async def build(src: OpcUaSource, pki_dir: Path) -> Client:
    return await build_client(src, pki_dir=pki_dir, timeout_s=4.0, watchdog_s=1.0)


@pytest.mark.parametrize(
    ("policy", "mode"),
    [
        ("Basic256Sha256", "SignAndEncrypt"),
        ("Aes128_Sha256_RsaOaep", "SignAndEncrypt"),
        ("Aes256_Sha256_RsaPss", "SignAndEncrypt"),
        ("Aes256_Sha256_RsaPss", "Sign"),
    ],
)
async def test_a_secure_session_with_user_and_password_delivers_values(
    policy: str, mode: str, bench: Bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, SECRET)
    plc = bench.plc
    src = with_password(plc, policy, mode, server_certificate=str(bench.server.certificate))
    sessions = plc.sessions_created
    async with OpcUaCollector(src, pki_dir=tmp_path, backoff=Backoff(0.1, 1.0)) as collector:
        got = await collect_until(collector.readings(), lambda seen: seen[-1].value == 4242)
        assert got[-1].address == plc.address
        assert plc.sessions_created == sessions + 1
        assert collector.health.last_error is None
    assert (tmp_path / "own" / "cert.der").is_file()  # the client certificate was generated


async def test_a_configured_client_certificate_is_used(
    bench: Bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, SECRET)
    edge = await key_pair(tmp_path, "edge", "urn:plant:edge-fa1", ExtendedKeyUsageOID.CLIENT_AUTH)
    src = with_password(
        bench.plc,
        "Basic256Sha256",
        "SignAndEncrypt",
        certificate=str(edge.certificate),
        private_key=str(edge.private_key),
        server_certificate=str(bench.server.certificate),
    )
    client = await build(src, tmp_path / "pki")
    await client.connect()
    await client.disconnect()
    assert client.security_policy.host_certificate == edge.der
    assert client.application_uri == "urn:plant:edge-fa1"  # taken from the certificate
    assert not (tmp_path / "pki" / "own").exists()


async def test_a_wrong_password_is_reported_clearly_without_the_secret(
    bench: Bench,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "wrong-" + SECRET)
    plc = bench.plc
    src = with_password(
        plc, "Basic256Sha256", "SignAndEncrypt", server_certificate=str(bench.server.certificate)
    )
    caplog.set_level(logging.DEBUG)
    checks = plc.identity_checks
    # a network blip would be retried after 0.05, 0.1, 0.2, 0.4, 0.8, 1.6 s (halved by jitter at
    # most): 6 or more attempts in 3 s. A refused password is retried at the cap (2 s) only.
    async with OpcUaCollector(src, pki_dir=tmp_path, backoff=Backoff(0.05, 2.0)) as collector:
        await wait_for(lambda: collector.health.last_error is not None, "the refusal")
        await asyncio.sleep(3.0)
        assert not collector.health.connected
        assert "BadUserAccessDenied" in (collector.health.last_error or "")
        assert 1 <= plc.identity_checks - checks <= 3, plc.identity_checks - checks
    # ours only: asyncua's own loggers (its test server's fault responses) are not the collector's
    ours = [r for r in caplog.records if r.name.startswith("collectors")]
    warnings = [r for r in ours if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "check username and password" in warnings[0].getMessage()

    # what the session loop sees, and the text an operator reads
    client = await build(src, tmp_path)
    with pytest.raises(BadUserAccessDenied) as caught:
        await client.connect()
    problem = configuration_error(caught.value)
    assert problem == (
        "BadUserAccessDenied: the server refused the user: check username and password"
        " (or the identity certificate)"
    )
    for text in (caplog.text, collector.health.last_error or "", problem, repr(src)):
        assert SECRET not in text


async def test_a_user_certificate_identity_is_accepted_and_an_unknown_one_refused(
    bench: Bench, tmp_path: Path
) -> None:
    plc = bench.plc
    security = {
        "policy": "Aes128_Sha256_RsaOaep",
        "mode": "SignAndEncrypt",
        "server_certificate": str(bench.server.certificate),
    }

    def identity(pair: KeyPair) -> OpcUaSource:
        files = {"certificate": str(pair.certificate), "private_key": str(pair.private_key)}
        return source(plc, security=security, identity=files)

    checks = plc.identity_checks
    async with OpcUaCollector(identity(bench.operator), pki_dir=tmp_path) as collector:
        got = await collect_until(collector.readings(), lambda seen: seen[-1].value == 4242)
        assert got[-1].address == plc.address
    assert plc.identity_checks == checks + 1

    client = await build(identity(bench.stranger), tmp_path)
    with pytest.raises(BadUserAccessDenied) as caught:
        await client.connect()
    assert configuration_error(caught.value) is not None


async def test_an_untrusted_server_gets_no_credentials_until_it_is_trusted(
    bench: Bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, SECRET)
    plc = bench.plc
    src = with_password(plc, "Basic256Sha256", "SignAndEncrypt")  # nothing trusted yet
    sessions, checks = plc.sessions_created, plc.identity_checks
    async with OpcUaCollector(src, pki_dir=tmp_path, backoff=Backoff(0.1, 0.2)) as collector:
        await wait_for(lambda: collector.health.last_error is not None, "the refusal")
        error = collector.health.last_error or ""
        assert thumbprint(bench.server.der) in error
        trusted = tmp_path / "trusted"
        assert f"into {trusted}" in error, error
        assert (plc.sessions_created, plc.identity_checks) == (sessions, checks)

        rejected = next((tmp_path / "rejected").iterdir())
        trusted.mkdir()
        rejected.rename(trusted / rejected.name)  # what the message says to do
        got = await collect_until(collector.readings(), lambda seen: seen[-1].value == 4242)
        assert got[-1].address == plc.address
        assert collector.health.connected
    assert plc.identity_checks == checks + 1
