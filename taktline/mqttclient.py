"""One place that turns an `MqttConnection` from config into an MQTT client.

`mqtt_client`: an aiomqtt client (asyncio; where speed does not matter: the live bus).
`paho_client`: a paho-mqtt client with manual acknowledgement for the collector's hot path,
which runs paho's own network thread (see collectors/mqtt/session.py).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Literal

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from taktline.model.connections import MqttConnection, TlsSettings

SESSION_EXPIRY_S = 7 * 24 * 3600
"""How long an MQTT 5 broker keeps a persistent session (and its queued QoS 1 messages) while
the client is away: a week covers a long weekend's outage of an edge."""


def tls_context(tls: TlsSettings) -> ssl.SSLContext:
    """An SSL context for the broker: CA file (or system store), optional client certificate."""
    context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    context.check_hostname = tls.verify_hostname
    return context


def mqtt_client(
    connection: MqttConnection,
    *,
    identifier: str | None = None,
    will: aiomqtt.Will | None = None,
) -> aiomqtt.Client:
    """An (unconnected) aiomqtt client with a clean session; use it as
    `async with mqtt_client(...) as client:`."""
    version = (
        aiomqtt.ProtocolVersion.V5 if connection.protocol == "5" else aiomqtt.ProtocolVersion.V311
    )
    password = connection.password.reveal() if connection.password else None
    kwargs: dict[str, object] = {}
    if version is aiomqtt.ProtocolVersion.V311:
        kwargs["clean_session"] = True
    else:
        kwargs["clean_start"] = paho.MQTT_CLEAN_START_FIRST_ONLY
    return aiomqtt.Client(
        connection.host,
        connection.port,
        username=connection.username,
        password=password,
        identifier=identifier or connection.client_id,
        protocol=version,
        will=will,
        keepalive=connection.keepalive_s,
        tls_context=tls_context(connection.tls) if connection.tls else None,
        **kwargs,  # type: ignore[arg-type]
    )


@dataclass(frozen=True, slots=True)
class PahoClient:
    """A configured (unconnected) paho client and what `connect` needs."""

    client: paho.Client
    host: str
    port: int
    keepalive: int
    clean_start: bool | Literal[3]
    properties: Properties | None


def paho_client(
    connection: MqttConnection,
    *,
    identifier: str,
    persistent_session: bool = True,
    receive_maximum: int | None = None,
) -> PahoClient:
    """A paho client with manual acknowledgement (`client.ack(mid, qos)`) and no automatic
    reconnect (the caller reconnects with its own backoff).

    With `persistent_session`: clean_session false on 3.1.1; clean_start false and a session
    expiry of SESSION_EXPIRY_S on 5. `receive_maximum` (MQTT 5) bounds the QoS 1 messages the
    broker sends before they are acknowledged. Raises SecretError when the password is missing.
    """
    v5 = connection.protocol == "5"
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=identifier,
        clean_session=None if v5 else not persistent_session,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        reconnect_on_failure=False,
        manual_ack=True,
    )
    if connection.username is not None:
        password = connection.password.reveal() if connection.password else None
        client.username_pw_set(connection.username, password)
    if connection.tls is not None:
        client.tls_set_context(tls_context(connection.tls))
    properties: Properties | None = None
    if v5:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if persistent_session:
            properties.SessionExpiryInterval = SESSION_EXPIRY_S
        if receive_maximum is not None:
            properties.ReceiveMaximum = receive_maximum
    # 3.1.1 takes clean_session (above); connect() refuses a clean_start other than the default
    clean_start: bool | Literal[3] = (
        False if v5 and persistent_session else paho.MQTT_CLEAN_START_FIRST_ONLY
    )
    return PahoClient(
        client, connection.host, connection.port, connection.keepalive_s, clean_start, properties
    )
