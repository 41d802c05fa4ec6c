"""Connection settings shared by sources and sinks: MQTT brokers, TLS, HTTP listeners."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from taktline.model.base import ConfigPath, StrictModel
from taktline.model.secrets import SecretRef


class TlsSettings(StrictModel):
    """TLS for a client connection. Without `ca_file` the system trust store is used."""

    ca_file: ConfigPath | None = None
    cert_file: ConfigPath | None = Field(default=None, description="Client certificate (PEM).")
    key_file: ConfigPath | None = Field(default=None, description="Client private key (PEM).")
    verify_hostname: bool = True


class MqttConnection(StrictModel):
    """How to reach an MQTT broker."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    protocol: Literal["3.1.1", "5"] = "5"
    client_id: str | None = Field(
        default=None, description="Stable client id (needed for persistent sessions)."
    )
    username: str | None = None
    password: SecretRef | None = None
    tls: TlsSettings | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)


class HttpListen(StrictModel):
    """Where an HTTP endpoint listens. Port 0 picks a free port."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
