"""One place that turns an `MqttConnection` from config into an MQTT client.

`mqtt_client`: an aiomqtt client (asyncio; where speed does not matter: the server, the
simulator). `tls_context`: the SSL context of a connection's TLS settings, for every client.
The hot paths (the MQTT collector, the live-bus sink) use our own codec (taktline/mqttwire.py).
"""

from __future__ import annotations

import ssl

import aiomqtt
import paho.mqtt.client as paho

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
