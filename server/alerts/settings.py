"""Settings of alert delivery: the SMTP relay, the retry policy, acknowledgement links.

Meant to sit in the server config as `alerts: {delivery: ...}` (see docs/alert-channels.md):

    delivery:
      public_url: https://taktline.plant.example
      smtp: {host: smtp.plant.example, port: 587, from: taktline@plant.example,
             username: taktline, password: {env: TAKTLINE_SMTP_PASSWORD}, starttls: true}
      retry: {max_attempts: 6, min_backoff_s: 1, max_backoff_s: 60}
      ack: {signing_key: {file: /run/secrets/ack-key}, lifetime_s: 43200}
"""

from __future__ import annotations

import random
import re

from pydantic import ConfigDict, Field, field_validator, model_validator

from taktline.model.base import StrictModel
from taktline.model.secrets import SecretRef

EMAIL_ADDRESS = re.compile(r"^[^@\s/:?]+@[^@\s/:?]+\.[^@\s/:?]+$")
"""An email address as a roster names it: `name@domain.tld`, no display name."""


class SmtpSettings(StrictModel):
    """The plant's SMTP relay; plain email addresses in rosters are sent through it."""

    model_config = ConfigDict(populate_by_name=True)

    host: str = Field(min_length=1, pattern=r"^[^\s/:@?#]+$")
    port: int = Field(default=587, ge=1, le=65535)
    from_: str = Field(alias="from", description="The sender address of alert mails.")
    username: str | None = Field(default=None, min_length=1)
    password: SecretRef | None = None
    starttls: bool = Field(
        default=True, description="Upgrade with STARTTLS; false for a plain relay (port 25)."
    )

    @field_validator("from_")
    @classmethod
    def _an_address(cls, value: str) -> str:
        if not EMAIL_ADDRESS.match(value):
            raise ValueError(f"'{value}' is not an email address (name@domain.tld)")
        return value

    @model_validator(mode="after")
    def _password_needs_user(self) -> SmtpSettings:
        if self.password is not None and self.username is None:
            raise ValueError("a password needs a username")
        return self


class RetryPolicy(StrictModel):
    """How one message is retried on one channel before it is reported failed."""

    max_attempts: int = Field(default=6, ge=1, le=100, description="Attempts per message.")
    min_backoff_s: float = Field(default=1.0, gt=0, description="Pause after the 1st failure.")
    max_backoff_s: float = Field(default=60.0, gt=0, description="Longest pause (the cap).")
    attempt_timeout_s: float = Field(
        default=30.0, gt=0, le=600, description="An attempt with no answer by then has failed."
    )
    queue_size: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="Messages waiting per channel; when full the oldest waiting one is dropped.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> RetryPolicy:
        if self.max_backoff_s < self.min_backoff_s:
            raise ValueError("max_backoff_s must not be below min_backoff_s")
        return self

    def backoff_s(self, failures: int, rng: random.Random) -> float:
        """The pause after `failures` failed attempts in a row: doubling from min_backoff_s,
        capped at max_backoff_s, with jitter (a random point in its upper half)."""
        ceiling = min(self.max_backoff_s, self.min_backoff_s * 2.0 ** min(failures - 1, 60))
        return rng.uniform(ceiling / 2, ceiling)


class AckSettings(StrictModel):
    """Signed, expiring acknowledgement links."""

    signing_key: SecretRef | None = Field(
        default=None,
        description="Key that signs ack tokens; without one a random key is kept in"
        " state_dir/ack-signing-key (mode 0600).",
    )
    lifetime_s: float = Field(
        default=12 * 3600.0, gt=0, description="How long an ack link stays valid."
    )


class AlertDelivery(StrictModel):
    """How alert messages reach people."""

    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="The server's URL as people's phones reach it; without it messages carry"
        " no ack link.",
    )
    smtp: SmtpSettings | None = Field(
        default=None, description="The relay for plain email addresses in rosters."
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    ack: AckSettings = Field(default_factory=AckSettings)
