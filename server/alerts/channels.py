"""Notification channels: an apprise URL, or a plain email address sent through the SMTP relay.

Apprise URLs carry passwords and tokens, so a `Channel` shows itself (repr, str, logs) only in
its redacted form: apprise's `url(privacy=True)` (passwords as `****`, tokens as `a...z`)
without the query string (custom headers such as `+Authorization=...` and `-token=...` are not
masked by apprise), and for the generic webhooks (json, xml, form) without the path either,
which apprise does not treat as secret but which often holds one. Text from apprise about a
channel (why it cannot be loaded, why a delivery failed) goes through `Channel.scrub`, which
masks every part of the URL but its scheme.

Apprise's own logger is set to WARNING and cut off from ours when this module is imported
(unless the operator set its level): at DEBUG it prints full URLs, tokens included, and it
warns on every attempt; the notifier reports failures itself, once, with apprise's reason
scrubbed.

An email address becomes `mailto://` (plain, `mode=insecure`) or `mailtos://...&mode=starttls`
on the relay, e.g. `mailto://127.0.0.1:2525?smtp=127.0.0.1&from=a@x.example&to=b@x.example
&mode=insecure&format=text`; `smtp=` names the relay so apprise never guesses a provider from
the sender's domain, and a username and password (read from their SecretRef when the channel
is made) go in the user part.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

import apprise

from taktline.config.settings import EMAIL_ADDRESS, SmtpSettings
from taktline.model.secrets import SecretError

GENERIC_WEBHOOKS = frozenset({"json", "jsons", "xml", "xmls", "form", "forms"})
APPRISE_LOGGER = "apprise"
_SHORTEST_SECRET = 4


class ChannelError(ValueError):
    """A channel cannot be made: not an apprise URL apprise loads, nor an email address with an
    SMTP relay configured. The message names the channel in its redacted form only."""


def quiet_apprise_logger() -> None:
    """Unless the operator set its level: apprise logs nothing below WARNING (its DEBUG lines
    carry full URLs), and its warnings stay out of our handlers (`apprise_warnings` collects
    them for the notifier's once-per-failure report)."""
    logger = logging.getLogger(APPRISE_LOGGER)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)
        logger.propagate = False


quiet_apprise_logger()


@dataclass(frozen=True)
class Channel:
    """Where one person is notified. `url` is the full apprise URL (secrets included);
    everything shown to people or logs is `redacted`."""

    url: str = field(repr=False)
    redacted: str

    @classmethod
    def from_url(cls, url: str) -> Channel:
        """A channel for an apprise URL; ChannelError when apprise cannot load it."""
        with apprise_warnings() as reasons:
            plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            scheme = url.partition("://")[0] if "://" in url else "?"
            why = scrub(url, "; ".join(reasons)) or "unknown scheme or malformed URL"
            raise ChannelError(f"apprise cannot load the channel URL '{scheme}://…': {why}")
        private: str = plugin.url(privacy=True)  # type: ignore[no-untyped-call]
        return cls(url=url, redacted=_redact(private))

    def scrub(self, text: str) -> str:
        """`text` with every part of this channel's URL but its scheme masked."""
        return scrub(self.url, text)

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"Channel({self.redacted})"


def channel_for(spec: str, smtp: SmtpSettings | None) -> Channel:
    """The channel a roster names: an apprise URL, or an email address sent through `smtp`."""
    spec = spec.strip()
    if "://" in spec:
        return Channel.from_url(spec)
    if not EMAIL_ADDRESS.match(spec):
        raise ChannelError(
            f"'{spec}' is neither an apprise URL (scheme://...) nor an email address"
        )
    if smtp is None:
        raise ChannelError(f"'{spec}' is an email address, but no alerts smtp relay is configured")
    return Channel.from_url(smtp_url(smtp, spec))


def smtp_url(smtp: SmtpSettings, to: str) -> str:
    """The apprise mailto URL that sends to `to` through the relay (reads the password)."""
    user = ""
    if smtp.username is not None:
        user = urllib.parse.quote(smtp.username, safe="")
        if smtp.password is not None:
            try:
                password = smtp.password.reveal()
            except SecretError as exc:
                raise ChannelError(f"smtp password: {exc}") from None
            user += ":" + urllib.parse.quote(password, safe="")
        user += "@"
    query = urllib.parse.urlencode(
        {
            "smtp": smtp.host,
            "from": smtp.from_,
            "to": to,
            "mode": "starttls" if smtp.starttls else "insecure",
            "format": "text",
        }
    )
    scheme = "mailtos" if smtp.starttls else "mailto"
    return f"{scheme}://{user}{smtp.host}:{smtp.port}?{query}"


@contextlib.contextmanager
def apprise_warnings() -> Iterator[list[str]]:
    """Collect apprise's warnings and errors raised in this thread while the block runs."""
    reasons: list[str] = []
    thread = threading.get_ident()

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.thread == thread:
                reasons.append(record.getMessage())

    handler = _Collect(logging.WARNING)
    logger = logging.getLogger(APPRISE_LOGGER)
    logger.addHandler(handler)
    try:
        yield reasons
    finally:
        logger.removeHandler(handler)


def scrub(url: str, text: str) -> str:
    """`text` with the user, password, host, path segments and query values of `url` masked."""
    parts = urllib.parse.urlsplit(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    pieces = [*userinfo.split(":", 1), hostport.rsplit(":", 1)[0], *parts.path.split("/")]
    pieces += [value for _, value in urllib.parse.parse_qsl(parts.query)]
    secrets = set()
    for piece in pieces:
        for form in (piece, urllib.parse.unquote(piece)):
            secrets.update([form, *form.split()])
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _SHORTEST_SECRET:
            text = text.replace(secret, "****")
    return text


def _redact(private_url: str) -> str:
    parts = urllib.parse.urlsplit(private_url)
    path = "/…" if parts.scheme in GENERIC_WEBHOOKS and parts.path.strip("/") else parts.path
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))
