"""A real asyncua server with chosen security policies, users and user certificates.

It counts the sessions clients create and the identities they present (each a credential
check), and can restart on the same port with another certificate (a replaced PLC).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from cryptography.x509 import ObjectIdentifier
from cryptography.x509.oid import ExtendedKeyUsageOID

from taktline.localbroker import free_port

logging.getLogger("asyncua").setLevel(logging.CRITICAL)

NAMESPACE = "urn:taktline:test:secure-plc"
COUNTER = "Secure.Passed"


@dataclass(frozen=True)
class KeyPair:
    certificate: Path
    private_key: Path

    @property
    def der(self) -> bytes:
        return self.certificate.read_bytes()


async def key_pair(folder: Path, name: str, uri: str, use: ObjectIdentifier) -> KeyPair:
    """A self-signed RSA 2048 certificate (DER) and key (PEM) made by asyncua's helper."""
    pair = KeyPair(folder / f"{name}-cert.der", folder / f"{name}-key.pem")
    await setup_self_signed_certificate(
        pair.private_key, pair.certificate, uri, "127.0.0.1", [use], {"organizationName": name}
    )
    return pair


async def server_pair(folder: Path, name: str) -> KeyPair:
    return await key_pair(folder, name, f"urn:test:{name}", ExtendedKeyUsageOID.SERVER_AUTH)


class _Identities(UserManager):
    """Accepts the given users, user certificates (DER) or anonymous; counts the checks.

    asyncua passes no token type: a server offers either certificate or anonymous identities.
    """

    def __init__(self, server: SecureServer) -> None:
        self._server = server

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        self._server.identity_checks += 1
        if username is not None:
            ok = self._server.users.get(username) == password
        elif ua.X509IdentityToken in self._server.tokens:  # the user certificate
            ok = certificate in self._server.user_certificates
        else:  # anonymous
            ok = ua.AnonymousIdentityToken in self._server.tokens
        return User(role=UserRole.User) if ok else None


@dataclass
class SecureServer:
    """Serves `COUNTER` = `value` on the given policies; `tokens` are the identity token types."""

    pair: KeyPair
    policies: list[ua.SecurityPolicyType]
    tokens: list[type] = field(default_factory=lambda: [ua.UserNameIdentityToken])
    users: dict[str, str] = field(default_factory=dict)
    user_certificates: list[bytes] = field(default_factory=list)
    value: int = 4242
    port: int = field(default_factory=free_port)
    sessions_created: int = 0
    identity_checks: int = 0
    _server: Server | None = None

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/taktline/secure"

    @property
    def address(self) -> str:
        return f"ns=2;s={COUNTER}"

    async def start(self) -> None:
        """Start (again, on the same port); the counts start afresh."""
        self.sessions_created = self.identity_checks = 0
        server = Server(user_manager=_Identities(self))
        await server.init()
        server.set_endpoint(self.endpoint)
        await server.load_certificate(str(self.pair.certificate))
        await server.load_private_key(str(self.pair.private_key))
        server.set_security_policy(self.policies)
        server.set_identity_tokens(self.tokens)
        namespace = await server.register_namespace(NAMESPACE)
        assert namespace == 2
        await server.nodes.objects.add_variable(
            f"ns={namespace};s={COUNTER}", COUNTER, ua.Variant(self.value, ua.VariantType.UInt32)
        )
        register = server.iserver.register_external_session

        def registered(session: Any) -> None:
            self.sessions_created += 1
            register(session)

        server.iserver.register_external_session = registered  # type: ignore[method-assign]
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None
