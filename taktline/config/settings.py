"""Edge and server settings: each names the plant file it serves."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

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


class ServerSettings(StrictModel):
    """`taktline server --config F`: line screens, API, alerts, milestones."""

    plant: ConfigPath = Field(description="The plant file, relative to this file.")
    live_bus: MqttConnection = Field(default_factory=MqttConnection)
    http: HttpListen = Field(default_factory=HttpListen)
    state_dir: ConfigPath = Path("state")
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
