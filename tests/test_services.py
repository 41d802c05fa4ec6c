"""The service fixtures start real servers that answer."""

from __future__ import annotations

import httpx
import paho.mqtt.publish as publish
import paho.mqtt.subscribe as subscribe

from tests.fixtures.services import InfluxService, MosquittoService


def test_influxd_accepts_writes_and_answers_influxql(influxd: InfluxService) -> None:
    influxd.create_database("fixture_check")
    response = httpx.post(
        f"{influxd.url}/write",
        params={"db": "fixture_check", "precision": "s"},
        content="production,line=fa1 total=5i 1700000000",
    )
    assert response.status_code == 204
    rows = influxd.query("SELECT total FROM production", database="fixture_check")
    assert [row["total"] for row in rows] == [5]


def test_mosquitto_keeps_retained_messages(mosquitto: MosquittoService) -> None:
    publish.single("t/x", "42", retain=True, hostname=mosquitto.host, port=mosquitto.port)
    message = subscribe.simple("t/x", hostname=mosquitto.host, port=mosquitto.port)
    assert message is not None and message.payload == b"42"
