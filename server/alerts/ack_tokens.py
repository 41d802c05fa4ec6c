"""Signed, expiring acknowledgement tokens: the link in an alert message that acknowledges it.

    tokens = AckTokens(load_signing_key(settings.ack.signing_key, state_dir))
    link = ack_link(public_url, tokens.issue("line3/stopped#2", "anna"))
    alert_id, person_id = tokens.verify(token, max_age_s=settings.ack.lifetime_s)

A token is itsdangerous' URL-safe timed serialisation of `[alert_id, person_id]`, signed with
HMAC-SHA256 under the salt `taktline.alerts.ack`; it carries its signing time, so its lifetime
is chosen when it is verified (whole seconds). It is not encrypted: the alert and the person
can be read from it, which is fine for a link mailed to that person.

The key comes from a SecretRef (`{env: ...}` or `{file: ...}`). Without one, a random key is
made on first start in `state_dir/ack-signing-key` (mode 0600) and read on later starts, so
links in messages already sent stay valid across restarts. Deleting the file (or changing
the key) voids every link in flight.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from taktline.model.secrets import SecretError, SecretRef

log = logging.getLogger(__name__)

KEY_FILE = "ack-signing-key"
SALT = "taktline.alerts.ack"


class TokenError(Exception):
    """An acknowledgement token was refused."""


class TokenInvalid(TokenError):
    """Not a token signed with our key: malformed, altered, or signed with another key."""


class TokenExpired(TokenError):
    """A genuine token older than the lifetime allowed (or dated in the future)."""


class SigningKeyError(RuntimeError):
    """The signing key cannot be read or made."""


class AckTokens:
    """Issues and verifies tokens under one key; `clock` gives seconds since the epoch."""

    def __init__(self, key: str, *, clock: Callable[[], float] = time.time):
        if not key:
            raise SigningKeyError("the ack signing key is empty")
        self._serializer = URLSafeTimedSerializer(
            key,
            salt=SALT,
            signer=_ClockSigner,
            signer_kwargs={"digest_method": hashlib.sha256, "clock": clock},
        )

    def issue(self, alert_id: str, person_id: str) -> str:
        """A token naming the alert and the person it was sent to."""
        return self._serializer.dumps([alert_id, person_id])

    def verify(self, token: str, max_age_s: float) -> tuple[str, str]:
        """(alert_id, person_id) of a genuine token not older than `max_age_s`."""
        try:
            payload = self._serializer.loads(token, max_age=int(max_age_s))
        except SignatureExpired:
            raise TokenExpired("the acknowledgement link has expired") from None
        except BadData:
            raise TokenInvalid("not a valid acknowledgement link") from None
        match payload:
            case [str() as alert_id, str() as person_id]:
                return alert_id, person_id
        raise TokenInvalid("the acknowledgement token does not name an alert and a person")


def ack_link(public_url: str, token: str) -> str:
    """The link people open: `{public_url}/alerts/ack/{token}`."""
    return f"{public_url.rstrip('/')}/alerts/ack/{token}"


def load_signing_key(secret: SecretRef | None, state_dir: Path) -> str:
    """The configured key, or the one kept in `state_dir` (made there on first use)."""
    if secret is not None:
        try:
            key = secret.reveal()
        except SecretError as exc:
            raise SigningKeyError(f"ack signing_key: {exc}") from None
        if not key:
            raise SigningKeyError(f"ack signing_key: the secret {secret!r} is empty")
        return key
    path = state_dir / KEY_FILE
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key_file(path)
    except OSError as exc:
        raise SigningKeyError(f"cannot make the ack signing key {path}: {exc.strerror}") from None
    key = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(key + "\n")
    log.info("made a new ack signing key in %s", path)
    return key


def _read_key_file(path: Path) -> str:
    try:
        if path.stat().st_mode & 0o077:
            log.warning("the ack signing key %s can be read by others: chmod 600 it", path)
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SigningKeyError(f"cannot read the ack signing key {path}: {exc.strerror}") from None
    if not key:
        raise SigningKeyError(f"the ack signing key {path} is empty: delete it to make a new one")
    return key


class _ClockSigner(TimestampSigner):
    """A TimestampSigner whose time comes from an injected clock."""

    def __init__(self, *args: Any, clock: Callable[[], float], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock())
