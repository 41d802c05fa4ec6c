"""Edge and server settings: each names the plant file it serves. The server's `alerts`
section (delivery: SMTP relay, retries, ack links; the repeat policy) is here too, see
docs/alert-channels.md and docs/alerts.md."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from taktline.model.base import ConfigPath, Slug, StrictModel
from taktline.model.connections import HttpListen, MqttConnection
from taktline.model.secrets import SecretRef


class InfluxWriting(StrictModel):
    """How the edge writes to InfluxDB, whichever API."""

    url: str = "http://127.0.0.1:8086"
    batch_size: int = Field(default=5000, ge=1, le=100_000)
    flush_interval_ms: int = Field(
        default=1000,
        ge=0,
        le=60_000,
        description="A batch short of batch_size waits until its oldest point is this old.",
    )
    gzip: bool = Field(default=True, description="Compress write bodies (Content-Encoding: gzip).")
    precision: Literal["ns", "us", "ms", "s"] = "ns"
    timeout_s: float = Field(default=10.0, gt=0)


class InfluxV1(InfluxWriting):
    """InfluxDB 1.x `/write` API (database, retention policy, user/password)."""

    api: Literal["v1"]
    database: str = "taktline"
    retention_policy: str | None = None
    username: str | None = None
    password: SecretRef | None = None


class InfluxV2(InfluxWriting):
    """InfluxDB 2.x/3.x `/api/v2/write` API (org, bucket, token)."""

    api: Literal["v2"]
    org: str
    bucket: str
    token: SecretRef


InfluxSettings = Annotated[InfluxV1 | InfluxV2, Field(discriminator="api")]


class OutboxSettings(StrictModel):
    """The edge's durable outbox (SQLite, WAL)."""

    max_records: int = Field(
        default=10_000_000,
        ge=1000,
        description="Most updates some sink has not delivered; then `when_full` applies.",
    )
    when_full: Literal["block", "drop_oldest"] = Field(
        default="block",
        description=(
            "block: stop taking readings (back-pressure on the collectors) and raise an alarm;"
            " drop_oldest: delete the oldest undelivered updates to make room, recording each"
            " such gap (the lifetime totals stay right; history points are lost)."
        ),
    )
    commit_interval_ms: int = Field(
        default=100, ge=1, le=10_000, description="Group commit: at most this long per batch."
    )


class EdgeSettings(StrictModel):
    """`taktline edge --config F`: one edge agent, usually one per line."""

    plant: ConfigPath = Field(description="The plant file, relative to this file.")
    edge_id: Slug
    sources: list[Slug] | None = Field(
        default=None, description="Ids of the plant's sources this edge reads; default: all."
    )
    state_dir: ConfigPath = Path("state")
    live_bus: MqttConnection = Field(default_factory=MqttConnection)
    live_bus_max_rate_hz: float = Field(
        default=10.0, gt=0, le=1000, description="Most messages per second on one counter topic."
    )
    influxdb: InfluxSettings | None = None
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    http: HttpListen = Field(default_factory=lambda: HttpListen(port=8081))


class GrafanaSettings(StrictModel):
    """A Grafana 10+ instance, reached through its HTTP API with a service-account token."""

    url: str = Field(
        default="http://127.0.0.1:3000",
        pattern=r"^https?://[^@/]+(/.*)?$",
        description="Grafana's base URL (http or https; no user:password in it).",
    )
    token: SecretRef = Field(
        description="Service-account token: Editor for dashboards and annotations, Admin to push"
        " the datasource."
    )
    folder_uid: str = Field(default="taktline", pattern=r"^[A-Za-z0-9_-]{1,40}$")
    folder_title: str = Field(default="taktline", min_length=1)
    datasource_url: str | None = Field(
        default=None,
        description="InfluxDB's URL as Grafana reaches it; default: the server's influxdb.url.",
    )
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    tls_ca_file: ConfigPath | None = Field(
        default=None, description="CA bundle (PEM) that signed Grafana's certificate."
    )
    tls_verify: bool = Field(default=True, description="false: accept any certificate.")


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


class ServerAlerts(StrictModel):
    """The server file's `alerts`: how messages reach people, and the repeat policy. The rules
    and the rosters (who is alerted) are in the plant file."""

    delivery: AlertDelivery = Field(default_factory=AlertDelivery)
    repeat_minutes: float = Field(
        default=30,
        ge=0,
        description="Send an unacknowledged alert again to the level last alerted this often"
        " (minutes); 0: never.",
    )


class ServerSettings(StrictModel):
    """`taktline server --config F`: line screens, API, alerts, milestones."""

    plant: ConfigPath = Field(description="The plant file, relative to this file.")
    live_bus: MqttConnection = Field(default_factory=MqttConnection)
    http: HttpListen = Field(default_factory=HttpListen)
    state_dir: ConfigPath = Path("state")
    state_store: SecretRef | None = Field(
        default=None,
        description="URL of a PostgreSQL database (postgresql://user:password@host:port/db)"
        " that server replicas share for shift state, audit, milestones and alerts; a secret,"
        " as it holds a password. Without it: state_dir/server.sqlite, this server's own.",
    )
    api_token: SecretRef | None = Field(
        default=None, description="Bearer token for write endpoints; without it they are closed."
    )
    stale_after_s: float = Field(
        default=30.0, gt=0, description="A line with no update for this long shows 'no data'."
    )
    influxdb: InfluxSettings | None = Field(
        default=None,
        description="Where milestone crossings and edge health samples are written.",
    )
    grafana: GrafanaSettings | None = Field(
        default=None,
        description="Where milestone annotations go and where `taktline grafana push` pushes.",
    )
    alerts: ServerAlerts = Field(
        default_factory=ServerAlerts,
        description="Alert delivery (SMTP relay, retries, ack links) and the repeat policy.",
    )

    @model_validator(mode="after")
    def _one_signing_key_for_replicas(self) -> ServerSettings:
        if self.state_store is not None and self.alerts.delivery.ack.signing_key is None:
            raise ValueError(
                "state_store (shared by replicas) needs alerts.delivery.ack.signing_key: every"
                " replica must sign acknowledge links with the same key"
            )
        return self
