"""The collector's own certificate, and which server certificates it trusts.

One folder per source, `pki_dir` (the edge's `state_dir/pki/{source id}`):

    own/cert.der   the client certificate, generated on first use and kept (never regenerated)
    own/key.pem    its RSA key, file mode 0600
    trusted/       trusted server certificates, DER or PEM (unless `security.trust_list` is set)
    rejected/      server certificates that were refused; move one to the trust folder to trust it

Everything here is blocking file I/O and RSA work: call it through `asyncio.to_thread`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import socket
from pathlib import Path

from asyncua.crypto import cert_gen
from asyncua.ua.uaerrors import UaError
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    load_der_private_key,
    load_pem_private_key,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from taktline.model.sources import OpcUaSource

log = logging.getLogger(__name__)

VALIDITY_DAYS = 5 * 365
"""Validity of a generated client certificate: five years."""

CERTIFICATE_SUFFIXES = (".der", ".pem", ".crt", ".cer")


class SecurityConfigError(UaError):
    """Security that cannot work as configured: someone must act; retrying soon will not help.

    A UaError, so a session loop treats it like any other failed session.
    """


class UntrustedServerError(SecurityConfigError):
    """The server presented a certificate this collector does not trust."""


def thumbprint(der: bytes) -> str:
    """The OPC UA thumbprint of a certificate: SHA-1 of its DER bytes, upper-case hex."""
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()


def load_der(path: Path) -> bytes:
    """A certificate file (DER or PEM) as DER bytes; SecurityConfigError naming the file."""
    try:
        data = path.read_bytes()
        if data.lstrip().startswith(b"-----"):
            return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
        return leaf_der(data)
    except OSError as exc:
        raise SecurityConfigError(f"cannot read certificate {path}: {exc.strerror}") from None
    except ValueError:
        raise SecurityConfigError(f"{path} is not a DER or PEM certificate") from None


def load_key(path: Path) -> PrivateKeyTypes:
    """A private key file (PEM or DER, unencrypted); SecurityConfigError naming the file."""
    try:
        data = path.read_bytes()
        if data.lstrip().startswith(b"-----"):
            return load_pem_private_key(data, password=None)
        return load_der_private_key(data, password=None)
    except OSError as exc:
        raise SecurityConfigError(f"cannot read private key {path}: {exc.strerror}") from None
    except (ValueError, TypeError):  # TypeError: the key is encrypted
        raise SecurityConfigError(f"{path} is not an unencrypted PEM or DER private key") from None


def leaf_der(data: bytes) -> bytes:
    """The first certificate of DER data that may hold a chain (servers may send theirs).

    Raises ValueError when it does not start with a DER certificate.
    """
    if len(data) < 2 or data[0] != 0x30:  # an ASN.1 SEQUENCE
        raise ValueError("not a DER certificate")
    size = data[1]
    if size < 0x80:
        end = 2 + size
    else:
        octets = size & 0x7F
        end = 2 + octets + int.from_bytes(data[2 : 2 + octets], "big")
    x509.load_der_x509_certificate(data[:end])
    return data[:end]


def application_uri(certificate: Path) -> str | None:
    """The URI in a certificate's subjectAltName: servers check it against the client's."""
    cert = x509.load_der_x509_certificate(load_der(certificate))
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def client_certificate(source: OpcUaSource, pki_dir: Path | None) -> tuple[Path, Path]:
    """(certificate, private key) of the client: the configured pair, else the kept one.

    The kept pair is generated on first use in `pki_dir/own/` and reused while it is there.
    """
    security = source.security
    if security.certificate is not None and security.private_key is not None:
        return security.certificate, security.private_key
    if pki_dir is None:
        raise SecurityConfigError(
            f"security policy {security.policy} needs security.certificate and private_key,"
            " or a state folder to keep a generated certificate in"
        )
    own = pki_dir / "own"
    cert_file, key_file = own / "cert.der", own / "key.pem"
    if cert_file.is_file() and key_file.is_file():
        return cert_file, key_file
    if cert_file.is_file():
        raise SecurityConfigError(
            f"{cert_file} has no private key {key_file}: restore the key, or remove the"
            " certificate to generate a new pair (servers must then trust the new one)"
        )
    try:
        _generate(source.id, cert_file, key_file)
    except OSError as exc:
        raise SecurityConfigError(
            f"cannot keep a client certificate in {own}: {exc.strerror}"
        ) from None
    log.info(
        "source %s: generated client certificate %s (thumbprint %s); servers that check client"
        " certificates must trust it",
        source.id,
        cert_file,
        thumbprint(cert_file.read_bytes()),
    )
    return cert_file, key_file


def _generate(source_id: str, cert_file: Path, key_file: Path) -> None:
    """Write a self-signed RSA 2048 client certificate; reuse a key left by an interrupted run."""
    cert_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if key_file.is_file():
        key = load_key(key_file)
        if not isinstance(key, RSAPrivateKey):
            raise SecurityConfigError(f"{key_file} is not an RSA private key")
    else:
        key = cert_gen.generate_private_key()
        _write_new(key_file, cert_gen.dump_private_key_as_pem(key), mode=0o600)
    uri = f"urn:taktline:collector:{source_id}"
    host = socket.gethostname()
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        f"taktline {source_id}@{host}",
        {"organizationName": "taktline"},
        [x509.UniformResourceIdentifier(uri), x509.DNSName(host)],
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        days=VALIDITY_DAYS,
    )
    _write_new(cert_file, cert.public_bytes(Encoding.DER), mode=0o644)


def _write_new(path: Path, data: bytes, *, mode: int) -> None:
    """Write `path` whole or not at all (a temporary file renamed), created with `mode`."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.unlink(missing_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    temp.replace(path)


def trust_folder(source: OpcUaSource, pki_dir: Path | None) -> Path | None:
    """Where trusted server certificates live: `security.trust_list`, else `pki_dir/trusted`."""
    if source.security.trust_list is not None:
        return source.security.trust_list
    return pki_dir / "trusted" if pki_dir is not None else None


def check_server_certificate(der: bytes, source: OpcUaSource, pki_dir: Path | None) -> None:
    """Accept the server's certificate (DER) or raise UntrustedServerError saying how to trust it.

    Trusted: equal to `security.server_certificate`, or in the trust folder, or, with
    `trust_on_first_use` and nothing trusted yet, stored in the trust folder now.
    """
    security = source.security
    pinned = load_der(security.server_certificate) if security.server_certificate else None
    if der == pinned:
        return
    folder = trust_folder(source, pki_dir)
    trusted = _certificates_in(folder) if folder is not None else []
    if der in trusted:
        return
    if security.trust_on_first_use and pinned is None and not trusted and folder is not None:
        stored = folder / _file_name(der)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _write_new(stored, der, mode=0o644)
        except OSError as exc:
            raise SecurityConfigError(
                f"cannot store the server certificate in {folder}: {exc.strerror}"
            ) from None
        log.warning(
            "source %s: trusting the server certificate %s on first use (thumbprint %s), kept"
            " in %s; only it is trusted from now on",
            source.id,
            _subject(der),
            thumbprint(der),
            stored,
        )
        return
    raise UntrustedServerError(_untrusted(der, source, pki_dir, folder))


def _untrusted(der: bytes, source: OpcUaSource, pki_dir: Path | None, folder: Path | None) -> str:
    text = f"server certificate {_subject(der)} (thumbprint {thumbprint(der)}) is not trusted"
    if source.security.server_certificate is not None:
        text += f": it is not security.server_certificate {source.security.server_certificate}"
    if folder is None:
        return text + "; set security.server_certificate or security.trust_list to trust it"
    if pki_dir is None:
        return text + f"; to trust it, put it into {folder}"
    rejected = pki_dir / "rejected" / _file_name(der)
    try:
        rejected.parent.mkdir(parents=True, exist_ok=True)
        if not rejected.exists():
            _write_new(rejected, der, mode=0o644)
    except OSError:  # the state folder is read-only: the operator gets the certificate elsewhere
        return text + f"; to trust it, put it into {folder}"
    return text + f"; to trust it, move {rejected} into {folder}"


def _certificates_in(folder: Path) -> list[bytes]:
    """The DER bytes of every certificate file in `folder` (none when it does not exist)."""
    if not folder.is_dir():
        return []
    return [
        load_der(path)
        for path in sorted(folder.iterdir())
        if path.is_file() and path.suffix.lower() in CERTIFICATE_SUFFIXES
    ]


def _subject(der: bytes) -> str:
    cert = x509.load_der_x509_certificate(der)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    expired = cert.not_valid_after_utc < dt.datetime.now(dt.UTC)
    name = f"'{names[0].value!s}'" if names else f"'{cert.subject.rfc4514_string()}'"
    return name + (" (expired)" if expired else "")


def _file_name(der: bytes) -> str:
    """`{common name} [{thumbprint}].der`, the way OPC UA stacks name trusted certificates."""
    cert = x509.load_der_x509_certificate(der)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(names[0].value)) if names else "server"
    return f"{name} [{thumbprint(der)}].der"
