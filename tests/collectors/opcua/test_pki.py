"""The client certificate kept in the PKI folder, and which server certificates are trusted."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import BadSessionIdInvalid, BadUserAccessDenied, UaStatusCodeError
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import Encoding

from collectors.opcua.connection import build_client, check_security, configuration_error
from collectors.opcua.pki import (
    SecurityConfigError,
    UntrustedServerError,
    client_certificate,
    thumbprint,
)
from taktline.model.secrets import SecretError
from taktline.model.sources import OpcUaIdentity, OpcUaSource
from tests.collectors.opcua.secure_server import KeyPair, SecureServer, server_pair

SIGN_AND_ENCRYPT = ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KeyPair, KeyPair]]:
    """Two server certificates: the PLC's, and the one of its replacement."""
    folder = tmp_path_factory.mktemp("server-certs")

    async def make() -> tuple[KeyPair, KeyPair]:
        return await server_pair(folder, "plc"), await server_pair(folder, "plc-new")

    yield asyncio.run(make())


SHARED_LOOP = pytest.mark.asyncio(loop_scope="module")
"""For the tests that use the module's `plc`."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def plc(pairs: tuple[KeyPair, KeyPair]) -> AsyncIterator[SecureServer]:
    """A PLC that keeps its certificate; tests that replace it start their own."""
    server = anonymous(pairs[0])
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def replaceable(pairs: tuple[KeyPair, KeyPair]) -> AsyncIterator[SecureServer]:
    server = anonymous(pairs[0])
    await server.start()
    yield server
    await server.stop()


def anonymous(pair: KeyPair) -> SecureServer:
    return SecureServer(pair, [SIGN_AND_ENCRYPT], tokens=[ua.AnonymousIdentityToken])


def source(plc: SecureServer, **security: Any) -> OpcUaSource:
    return OpcUaSource.model_validate(
        {
            "type": "opcua",
            "id": "eol-1",
            "endpoint": plc.endpoint,
            "security": {"policy": "Basic256Sha256", "mode": "SignAndEncrypt", **security},
            "nodes": [{"node": plc.address, "counter": "s/a/l/st/passed"}],
        }
    )


async def build(src: OpcUaSource, pki_dir: Path | None) -> Client:
    return await build_client(src, pki_dir=pki_dir, timeout_s=4.0, watchdog_s=1.0)


async def session(src: OpcUaSource, pki_dir: Path | None) -> bytes:
    """Open and close a real session; the client certificate it used (DER)."""
    client = await build(src, pki_dir)
    await client.connect()
    try:
        value = await client.get_node("ns=2;s=Secure.Passed").read_value()
        assert value == 4242
    finally:
        await client.disconnect()
    der = client.security_policy.host_certificate
    assert isinstance(der, bytes)
    return der


@SHARED_LOOP
async def test_a_generated_client_certificate_is_made_once_and_kept(
    plc: SecureServer, tmp_path: Path
) -> None:
    src = source(plc, trust_on_first_use=True)
    first = await session(src, tmp_path)
    second = await session(src, tmp_path)
    assert thumbprint(first) == thumbprint(second)
    own = tmp_path / "own"
    assert sorted(path.name for path in own.iterdir()) == ["cert.der", "key.pem"]
    assert (own / "key.pem").stat().st_mode & 0o777 == 0o600
    cert = x509.load_der_x509_certificate((own / "cert.der").read_bytes())
    assert cert.public_bytes(Encoding.DER) == first
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "urn:taktline:collector:eol-1"
    ]
    key = cert.public_key()
    assert isinstance(key, RSAPublicKey) and key.key_size >= 2048
    assert cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=4 * 365)


def test_a_key_left_by_an_interrupted_run_gets_its_certificate(
    pairs: tuple[KeyPair, KeyPair], tmp_path: Path
) -> None:
    src = source(SecureServer(pairs[0], []))
    cert_file, key_file = client_certificate(src, tmp_path)
    key_before = key_file.read_bytes()
    cert_file.unlink()
    assert client_certificate(src, tmp_path) == (cert_file, key_file)
    assert key_file.read_bytes() == key_before
    key_file.unlink()
    with pytest.raises(SecurityConfigError, match="has no private key"):
        client_certificate(src, tmp_path)


async def test_without_a_state_folder_a_policy_needs_a_configured_certificate(
    pairs: tuple[KeyPair, KeyPair],
) -> None:
    src = source(SecureServer(pairs[0], []), trust_on_first_use=True)  # refused before connecting
    with pytest.raises(SecurityConfigError) as caught:
        await build(src, None)
    assert "needs security.certificate and private_key" in str(caught.value)
    assert configuration_error(caught.value) == str(caught.value)


async def test_trust_on_first_use_keeps_the_first_certificate_and_refuses_a_new_one(
    replaceable: SecureServer, pairs: tuple[KeyPair, KeyPair], tmp_path: Path
) -> None:
    src = source(replaceable, trust_on_first_use=True)
    await session(src, tmp_path)
    trusted = tmp_path / "trusted"
    assert [path.read_bytes() for path in trusted.iterdir()] == [pairs[0].der]
    await session(src, tmp_path)  # the stored one is trusted from now on

    await replaceable.stop()  # the PLC is replaced: same address, another certificate
    replaceable.pair = pairs[1]
    await replaceable.start()
    with pytest.raises(UntrustedServerError) as caught:
        await build(src, tmp_path)
    message = str(caught.value)
    assert thumbprint(pairs[1].der) in message
    assert str(trusted) in message
    assert [path.read_bytes() for path in trusted.iterdir()] == [pairs[0].der]
    assert replaceable.sessions_created == 0
    assert configuration_error(caught.value) == message


async def test_a_trust_list_accepts_a_listed_certificate_and_refuses_another(
    replaceable: SecureServer, pairs: tuple[KeyPair, KeyPair], tmp_path: Path
) -> None:
    trust_list = tmp_path / "plant-trust"
    trust_list.mkdir()
    pem = x509.load_der_x509_certificate(pairs[0].der).public_bytes(Encoding.PEM)
    (trust_list / "plc.pem").write_bytes(pem)
    src = source(replaceable, trust_list=str(trust_list))
    await session(src, tmp_path / "pki")

    await replaceable.stop()
    replaceable.pair = pairs[1]
    await replaceable.start()
    with pytest.raises(UntrustedServerError) as caught:
        await build(src, tmp_path / "pki")
    message = str(caught.value)
    assert thumbprint(pairs[1].der) in message
    assert f"into {trust_list}" in message
    assert replaceable.sessions_created == 0

    # the message names the refused certificate's copy: moving it as told trusts it
    rejected = Path(message.split("move ", 1)[1].split(" into ", 1)[0])
    assert await asyncio.to_thread(rejected.read_bytes) == pairs[1].der
    shutil.move(rejected, trust_list)
    await session(src, tmp_path / "pki")


@SHARED_LOOP
async def test_a_pinned_server_certificate_refuses_another(
    plc: SecureServer, pairs: tuple[KeyPair, KeyPair], tmp_path: Path
) -> None:
    src = source(plc, server_certificate=str(pairs[1].certificate), trust_on_first_use=True)
    with pytest.raises(UntrustedServerError, match=r"it is not security\.server_certificate"):
        await build(src, tmp_path)
    assert not (tmp_path / "trusted").exists()  # a pin is never overridden on first use


@SHARED_LOOP
async def test_a_policy_the_server_does_not_offer_is_named(
    plc: SecureServer, tmp_path: Path
) -> None:
    src = source(plc, policy="Aes256_Sha256_RsaPss", trust_on_first_use=True)
    with pytest.raises(SecurityConfigError) as caught:
        await build(src, tmp_path)
    assert str(caught.value) == (
        "the server offers no Aes256_Sha256_RsaPss/SignAndEncrypt endpoint;"
        " it offers: Basic256Sha256/SignAndEncrypt"
    )


def test_unreadable_certificate_files_are_refused_at_construction(
    pairs: tuple[KeyPair, KeyPair], tmp_path: Path
) -> None:
    garbage = tmp_path / "cert.der"
    garbage.write_bytes(b"not a certificate")
    src = source(
        SecureServer(pairs[0], []),
        certificate=str(garbage),
        private_key=str(pairs[0].private_key),
    )
    with pytest.raises(ValueError, match=r"security.certificate: .*cert.der is not a DER or PEM"):
        check_security(src.security)
    missing = source(SecureServer(pairs[0], []), server_certificate=str(tmp_path / "none.der"))
    with pytest.raises(ValueError, match="cannot read certificate"):
        check_security(missing.security)
    bad_key = source(
        SecureServer(pairs[0], []),
        certificate=str(pairs[0].certificate),
        private_key=str(garbage),
    )
    with pytest.raises(ValueError, match=r"security\.private_key: .* is not an unencrypted PEM"):
        check_security(bad_key.security)


async def test_an_unreadable_identity_key_is_a_configuration_error(
    pairs: tuple[KeyPair, KeyPair], tmp_path: Path
) -> None:
    garbage = tmp_path / "user-key.pem"
    garbage.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n")
    src = source(SecureServer(pairs[0], []), trust_on_first_use=True).model_copy(
        update={
            "identity": OpcUaIdentity(certificate=pairs[0].certificate, private_key=garbage),
        }
    )
    with pytest.raises(SecurityConfigError) as caught:
        await build(src, tmp_path)
    assert configuration_error(caught.value) == (
        f"{garbage} is not an unencrypted PEM or DER private key"
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            BadUserAccessDenied(),  # type: ignore[no-untyped-call]
            "BadUserAccessDenied: the server refused the user: check username and password"
            " (or the identity certificate)",
        ),
        (
            UaStatusCodeError(StatusCodes.BadSecurityChecksFailed),  # type: ignore[no-untyped-call]
            "BadSecurityChecksFailed: the server's security checks failed; most often it does"
            " not trust this client's certificate yet",
        ),
        (SecretError("environment variable X is not set"), "environment variable X is not set"),
        (BadSessionIdInvalid(), None),  # type: ignore[no-untyped-call]
        (ConnectionRefusedError(111, "Connection refused"), None),
        (TimeoutError(), None),
    ],
)
def test_configuration_errors_are_told_from_network_blips(
    error: BaseException, expected: str | None
) -> None:
    assert configuration_error(error) == expected
