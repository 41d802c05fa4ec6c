"""Server test helpers: the example plant, a pinned clock, a live-bus publisher."""

from __future__ import annotations

import asyncio
import datetime as dt
import zoneinfo
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from taktline.config import ServerConfig, ServerSettings, load_plant
from taktline.livebus import CounterMessage, EdgeStatus, counter_topic, edge_status_topic
from taktline.model import CounterPath, HttpListen, MqttConnection, Plant, SecretRef
from taktline.mqttclient import mqtt_client
from tests.conftest import EXAMPLE_PLANT
from tests.fixtures.services import MosquittoService

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
WEDNESDAY_10 = dt.datetime(2026, 11, 25, 10, 0, tzinfo=BERLIN)
"""Inside the early shift (06:00-14:00, break 09:00-09:15) of a normal working day."""

FA1 = CounterPath("neustadt", "final", "fa1", "eol", "passed")
FA2 = CounterPath("neustadt", "final", "fa2", "eol", "passed")
PAINT1 = CounterPath("neustadt", "paint", "paint1", "topcoat", "produced")


class PinnedClock:
    """A clock that only moves when told to."""

    def __init__(self, now: dt.datetime):
        self.now = now.astimezone(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


def counter_body(total: int, delta: int, ts: dt.datetime) -> bytes:
    """The JSON an edge publishes on a counter topic."""
    return CounterMessage(total=total, delta=delta, ts=ts).model_dump_json().encode()


def status_body(edge_id: str, state: str, lines: list[str], ts: dt.datetime) -> bytes:
    """The JSON an edge publishes on its status topic."""
    return (
        EdgeStatus.model_validate({"edge_id": edge_id, "state": state, "lines": lines, "ts": ts})
        .model_dump_json()
        .encode()
    )


@pytest.fixture
def plant() -> Plant:
    return load_plant(EXAMPLE_PLANT)


@pytest.fixture
def clock() -> PinnedClock:
    return PinnedClock(WEDNESDAY_10)


@pytest.fixture
def server_config(mosquitto: MosquittoService, plant: Plant, tmp_path: Path) -> ServerConfig:
    settings = ServerSettings(
        plant=EXAMPLE_PLANT,
        state_dir=tmp_path / "server-state",
        live_bus=MqttConnection(host=mosquitto.host, port=mosquitto.port),
        http=HttpListen(host="127.0.0.1", port=0),
        stale_after_s=30,
    )
    return ServerConfig(settings, plant)


TOKEN = "t0ken-for-writes-7f3a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def token_config(server_config: ServerConfig, tmp_path: Path) -> ServerConfig:
    """The server config with an api_token read from a file."""
    secret = tmp_path / "api-token"
    secret.write_text(TOKEN + "\n", encoding="utf-8")
    settings = server_config.settings.model_copy(update={"api_token": SecretRef(file=secret)})
    return ServerConfig(settings, server_config.plant)


Publish = Callable[..., Awaitable[None]]


@pytest.fixture
def publish(mosquitto: MosquittoService) -> Publish:
    """`await publish(topic, payload, retain=True)`, as an edge would (QoS 1)."""

    async def send(topic: str, payload: bytes, *, retain: bool = True) -> None:
        connection = MqttConnection(host=mosquitto.host, port=mosquitto.port)
        async with mqtt_client(connection) as client:
            await client.publish(topic, payload, qos=1, retain=retain)

    return send


async def publish_counter(
    publish: Publish, path: CounterPath, total: int, delta: int, ts: dt.datetime
) -> None:
    await publish(counter_topic(path), counter_body(total, delta, ts))


async def publish_status(
    publish: Publish, edge_id: str, state: str, lines: list[str], ts: dt.datetime
) -> None:
    await publish(edge_status_topic(edge_id), status_body(edge_id, state, lines, ts))


async def eventually(check: Callable[[], Awaitable[Any]], timeout_s: float = 10.0) -> Any:
    """Poll `check()` until it returns something truthy; fail with its last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met after {timeout_s}s (last: {value!r})")
        await asyncio.sleep(0.05)
