"""One place that turns an `MqttConnection` from config into an aiomqtt client."""

from __future__ import annotations

import ssl

import aiomqtt
import paho.mqtt.client as paho
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
    persistent_session: bool = False,
    max_queued_incoming: int | None = None,
) -> aiomqtt.Client:
    """An (unconnected) aiomqtt client; use it as `async with mqtt_client(...) as client:`.

    With `persistent_session`, the broker keeps the session (and QoS 1 messages) across
    reconnects: clean_session false on 3.1.1; clean_start false and a session expiry of
    SESSION_EXPIRY_S on 5. `max_queued_incoming` bounds aiomqtt's queue of received messages.
    """
    version = (
        aiomqtt.ProtocolVersion.V5 if connection.protocol == "5" else aiomqtt.ProtocolVersion.V311
    )
    password = connection.password.reveal() if connection.password else None
    kwargs: dict[str, object] = {}
    if version is aiomqtt.ProtocolVersion.V311:
        kwargs["clean_session"] = not persistent_session
    elif persistent_session:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        kwargs["clean_start"] = False
        kwargs["properties"] = properties
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
        max_queued_incoming_messages=max_queued_incoming,
        **kwargs,  # type: ignore[arg-type]
    )
