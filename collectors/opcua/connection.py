"""An asyncua Client configured from an `OpcUaSource`: identity, credentials, message security.

asyncua is configured by setting attributes on a constructed Client; this is the one place
that does so, before connect(), and a fresh Client is built for every session.

With a security policy, building a client asks the server for its endpoints (an unsecured
GetEndpoints, as every OPC UA client does) and checks the certificate of the endpoint with that
policy and mode against the trusted ones (`pki.check_server_certificate`) before any session
exists, so no credential ever goes to a server that is not trusted. The secure channel is then
bound to that certificate: asyncua refuses a session whose server certificate differs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto import security_policies
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError
from cryptography import x509

from collectors.opcua.pki import (
    SecurityConfigError,
    application_uri,
    check_server_certificate,
    client_certificate,
    leaf_der,
    load_der,
    load_key,
)
from taktline.model.secrets import SecretError
from taktline.model.sources import OpcUaSecurity, OpcUaSource

SESSION_TIMEOUT_MS = 60_000
"""How long a server keeps a session we could not close (edge crash, cut network)."""

POLICIES: dict[str, type[security_policies.SecurityPolicy]] = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes128_Sha256_RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256_Sha256_RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
}
"""The plant file's policy names and asyncua's classes for them."""

_REFUSED_CERTIFICATE = "the server refused this client's certificate"
HINTS: dict[int, str] = {
    StatusCodes.BadUserAccessDenied: "the server refused the user: check username and password"
    " (or the identity certificate)",
    StatusCodes.BadIdentityTokenRejected: "the server does not accept this kind of identity"
    " (anonymous, username/password or certificate) on this endpoint",
    StatusCodes.BadIdentityTokenInvalid: "the server could not verify the identity: check"
    " the identity certificate and its private key",
    StatusCodes.BadUserSignatureInvalid: "the identity signature was refused: check that"
    " identity.private_key belongs to identity.certificate",
    StatusCodes.BadCertificateUntrusted: "the server does not trust this client's"
    " certificate: add it to the server's trusted certificates",
    StatusCodes.BadSecurityChecksFailed: "the server's security checks failed; most often"
    " it does not trust this client's certificate yet",
    StatusCodes.BadCertificateInvalid: _REFUSED_CERTIFICATE,
    StatusCodes.BadCertificateTimeInvalid: _REFUSED_CERTIFICATE + " (expired or not yet valid)",
    StatusCodes.BadCertificateUriInvalid: _REFUSED_CERTIFICATE + " (application URI)",
    StatusCodes.BadCertificateHostNameInvalid: _REFUSED_CERTIFICATE + " (host name)",
    StatusCodes.BadCertificateUseNotAllowed: _REFUSED_CERTIFICATE + " (key usage)",
    StatusCodes.BadCertificateRevoked: _REFUSED_CERTIFICATE + " (revoked)",
    StatusCodes.BadSecurityPolicyRejected: "the server does not accept this security policy",
    StatusCodes.BadSecurityModeRejected: "the server does not accept this security mode",
}
"""Status codes that say the configuration is wrong (not the network), and what to check."""


def configuration_error(exc: BaseException) -> str | None:
    """What someone must fix when `exc` is a configuration error, else None (a network blip).

    Configuration errors: a refused password or identity, a certificate either side refuses,
    an unreadable secret, security that cannot work as configured. Retrying soon only hammers
    the server (and may lock the account): report once, retry at the backoff's cap.
    The text never holds a secret.
    """
    if isinstance(exc, SecurityConfigError | SecretError):
        return str(exc)
    if isinstance(exc, UaStatusCodeError):
        hint = HINTS.get(exc.code)
        if hint is not None:
            return f"{ua.StatusCode(exc.code).name}: {hint}"
    return None


def check_security(security: OpcUaSecurity) -> None:
    """Raise ValueError for certificate or key files that cannot be read (at construction).

    The model checks that policy, mode and certificate settings fit together.
    """
    checks = {
        "certificate": load_der,
        "private_key": load_key,
        "server_certificate": load_der,
    }
    for key, load in checks.items():
        path = getattr(security, key)
        if path is not None:
            try:
                load(path)
            except SecurityConfigError as exc:
                raise ValueError(f"security.{key}: {exc}") from None


async def build_client(
    source: OpcUaSource, *, pki_dir: Path | None, timeout_s: float, watchdog_s: float
) -> Client:
    """A configured, unconnected Client; reveals the password now.

    `pki_dir` keeps the generated client certificate and the trusted server certificates.
    Raises SecretError (password unreadable), SecurityConfigError (unreadable identity files,
    no usable client certificate, no endpoint with the policy and mode, an untrusted server
    certificate: `pki.UntrustedServerError`), or OSError/TimeoutError/UaError from asking for
    endpoints.
    asyncua's own auto-reconnect stays off: the collector closes and rebuilds the session.
    """
    client = Client(source.endpoint, timeout=timeout_s, watchdog_intervall=watchdog_s)
    client.name = client.description = f"taktline {source.id}"
    client.application_uri = f"urn:taktline:collector:{source.id}"
    client.session_timeout = SESSION_TIMEOUT_MS
    if source.username is not None:
        client.set_user(source.username)
    if source.password is not None:
        client.set_password(source.password.reveal())
    if source.identity is not None:
        der, key = await asyncio.gather(
            asyncio.to_thread(load_der, source.identity.certificate),
            asyncio.to_thread(load_key, source.identity.private_key),
        )
        client.user_certificate = x509.load_der_x509_certificate(der)
        client.user_private_key = key
    if source.security.policy != "None":
        await _secure(client, source, pki_dir)
    return client


async def _secure(client: Client, source: OpcUaSource, pki_dir: Path | None) -> None:
    """Message security with a trusted server certificate (see the module docstring)."""
    security = source.security
    policy = POLICIES[security.policy]
    mode = getattr(ua.MessageSecurityMode, security.mode)
    certificate, private_key = await asyncio.to_thread(client_certificate, source, pki_dir)
    uri = await asyncio.to_thread(application_uri, certificate)
    if uri is not None:
        client.application_uri = uri
    endpoints = await client.connect_and_get_server_endpoints()
    server_der = _server_certificate(endpoints, security, policy.URI, mode)
    await asyncio.to_thread(check_server_certificate, server_der, source, pki_dir)
    await client.set_security(
        policy,
        certificate=str(certificate),
        private_key=str(private_key),
        server_certificate=server_der,
        mode=mode,
    )


def _server_certificate(
    endpoints: list[ua.EndpointDescription],
    security: OpcUaSecurity,
    policy_uri: str,
    mode: ua.MessageSecurityMode,
) -> bytes:
    """The (leaf) certificate of the endpoint with our policy and mode, as DER."""
    name = f"{security.policy}/{security.mode}"
    for endpoint in endpoints:
        if endpoint.SecurityPolicyUri == policy_uri and endpoint.SecurityMode == mode:
            try:
                return leaf_der(endpoint.ServerCertificate or b"")
            except ValueError:
                raise SecurityConfigError(
                    f"the server's {name} endpoint has no valid certificate"
                ) from None
    offered = sorted({_policy_and_mode(endpoint) for endpoint in endpoints})
    raise SecurityConfigError(
        f"the server offers no {name} endpoint; it offers: {', '.join(offered) or 'none'}"
    )


def _policy_and_mode(endpoint: ua.EndpointDescription) -> str:
    policy = endpoint.SecurityPolicyUri.rpartition("#")[2]
    return f"{policy}/{endpoint.SecurityMode.name.rstrip('_')}"
