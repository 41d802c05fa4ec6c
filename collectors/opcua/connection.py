"""An asyncua Client configured from an `OpcUaSource`: identity, credentials, message security.

asyncua is configured by setting attributes on a constructed Client; this is the one place
that does so, before connect(), and a fresh Client is built for every session.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto import security_policies
from cryptography import x509

from taktline.model.sources import OpcUaSecurity, OpcUaSource

SESSION_TIMEOUT_MS = 60_000
"""How long a server keeps a session we could not close (edge crash, cut network)."""


def check_security(security: OpcUaSecurity) -> None:
    """Raise ValueError for a security section that cannot work (checked at construction)."""
    if security.policy == "None":
        if security.mode != "None":
            raise ValueError(f"security mode {security.mode} needs a policy, not None")
        return
    if security.mode == "None":
        raise ValueError(f"security policy {security.policy} needs mode Sign or SignAndEncrypt")
    if security.certificate is None or security.private_key is None:
        raise ValueError(f"security policy {security.policy} needs certificate and private_key")


def _application_uri(certificate: Path) -> str | None:
    """The URI in the certificate's subjectAltName: servers check it against the client's."""
    data = certificate.read_bytes()
    cert = (
        x509.load_pem_x509_certificate(data)
        if data.lstrip().startswith(b"-----")
        else x509.load_der_x509_certificate(data)
    )
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


async def build_client(
    source: OpcUaSource, *, pki_dir: Path | None, timeout_s: float, watchdog_s: float
) -> Client:
    """A configured, unconnected Client; reveals the password now (SecretError if unreadable).

    `pki_dir` is where a generated client certificate and trusted server certificates live.

    asyncua's own auto-reconnect stays off: the collector closes and rebuilds the session.
    With a policy but no `server_certificate`, asyncua fetches it from the server's endpoints.
    """
    client = Client(source.endpoint, timeout=timeout_s, watchdog_intervall=watchdog_s)
    client.name = client.description = f"taktline {source.id}"
    client.application_uri = f"urn:taktline:collector:{source.id}"
    client.session_timeout = SESSION_TIMEOUT_MS
    if source.username is not None:
        client.set_user(source.username)
    if source.password is not None:
        client.set_password(source.password.reveal())
    security = source.security
    if security.policy != "None":
        assert security.certificate is not None and security.private_key is not None
        uri = await asyncio.to_thread(_application_uri, security.certificate)
        if uri is not None:
            client.application_uri = uri
        await client.set_security(
            getattr(security_policies, f"SecurityPolicy{security.policy}"),
            certificate=str(security.certificate),
            private_key=str(security.private_key),
            server_certificate=(
                str(security.server_certificate) if security.server_certificate else None
            ),
            mode=getattr(ua.MessageSecurityMode, security.mode),
        )
    return client
