"""MqttSession against a real Mosquitto: back-pressure, Receive Maximum, receipts across
connections, and a broker that goes silent."""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from collectors.base import SourceHealth
from collectors.mqtt.session import MqttSession
from collectors.support import Backoff
from taktline.localbroker import free_port
from taktline.model.connections import MqttConnection
from taktline.mqttwire import Message
from tests.collectors.helpers import wait_for
from tests.collectors.mqtt.helpers import device
from tests.fixtures.services import MosquittoService

TOPIC = "session/test"
BIG = 10_000
ONE_READ = 256 * 1024 // BIG + 1
"""At most this many BIG messages arrive in one read of the socket (asyncio reads 256 KiB)."""


@pytest.fixture
def persistent_broker(tmp_path: Path) -> Iterator[MosquittoService]:
    """Mosquitto that saves its sessions on the way down and finds them after a restart (it
    runs as this user, so it can write its database even when started as root)."""
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
        f"persistence true\npersistence_location {tmp_path}/\n"
    )
    binary = shutil.which("mosquitto", path="/usr/sbin:/usr/bin")
    assert binary is not None
    service = MosquittoService("127.0.0.1", port, conf, binary)
    service.start()
    try:
        yield service
    finally:
        service.stop()


@asynccontextmanager
async def session(
    mosquitto: MosquittoService,
    *,
    qos: int = 1,
    protocol: str = "5",
    receive_maximum: int = 1000,
    max_pending: int = 10_000,
) -> AsyncIterator[MqttSession]:
    """A connected, subscribed session with keepalive 5 s."""
    connection = MqttConnection.model_validate(
        {
            "host": mosquitto.host,
            "port": mosquitto.port,
            "protocol": protocol,
            "keepalive_s": 5,
        }
    )
    health = SourceHealth("src")
    async with MqttSession(
        connection,
        client_id="taktline-test-session",
        subscriptions=[(TOPIC, qos)],
        health=health,
        backoff=Backoff(0.1, 0.5),
        receive_maximum=receive_maximum,
        max_pending=max_pending,
    ) as mqtt:
        await wait_for(lambda: health.connected, "subscribed")
        yield mqtt


async def messages(mqtt: MqttSession) -> tuple[list[Message], list[int]]:
    """The next batch's messages and their receipts (QoS 1)."""
    got: list[Message] = []
    receipts: list[int] = []
    for item in await asyncio.wait_for(mqtt.next_batch(), 15):
        if isinstance(item, int):
            _generation[mqtt] = item
        else:
            got.append(item)
            if item.qos:
                receipts.append(mqtt.receipt(_generation[mqtt], item.packet_id))
    return got, receipts


_generation: dict[MqttSession, int] = {}
"""The connection number of the messages that follow, per session (as the collector keeps it)."""


async def nothing_comes(mqtt: MqttSession) -> bool:
    try:
        await asyncio.wait_for(mqtt.next_batch(), 0.5)
    except TimeoutError:
        return True
    return False


@pytest.mark.parametrize(("qos", "hold_s"), [(0, 8.0), (1, 1.0)])
async def test_a_full_pending_list_pauses_reading_and_nothing_is_lost(
    mosquitto: MosquittoService, qos: int, hold_s: float
) -> None:
    """At QoS 0 the hold outlasts 1.5 keepalives: pings go on while reading is paused."""
    count, max_pending = 300, 20
    async with session(mosquitto, qos=qos, max_pending=max_pending) as mqtt:
        async with device(mosquitto) as dev:
            for n in range(count):
                await dev.publish(TOPIC, n.to_bytes(4, "big") + bytes(BIG - 4), qos=qos)
        await asyncio.sleep(hold_s)  # nobody takes: reading pauses
        sizes: list[int] = []
        received: list[int] = []
        while len(received) < count:
            got, receipts = await messages(mqtt)
            mqtt.ack(receipts)
            sizes.append(len(got))
            received += [int.from_bytes(m.payload[:4], "big") for m in got]
        assert mqtt.health.connected and mqtt.health.reconnects == 0
    assert received == list(range(count))
    assert max(sizes) <= max_pending + ONE_READ < count


async def test_receive_maximum_bounds_what_the_broker_sends_unacknowledged(
    mosquitto: MosquittoService,
) -> None:
    async with session(mosquitto, receive_maximum=5) as mqtt:
        async with device(mosquitto) as dev:
            for n in range(12):
                await dev.publish(TOPIC, str(n), qos=1)
        first: list[Message] = []
        receipts: list[int] = []
        while len(first) < 5:
            got, more = await messages(mqtt)
            first += got
            receipts += more
        assert await nothing_comes(mqtt)  # the broker waits for our PUBACKs
        mqtt.ack(receipts)
        rest: list[Message] = []
        while len(rest) < 7:
            got, receipts = await messages(mqtt)
            mqtt.ack(receipts)
            rest += got
    assert [m.payload for m in first + rest] == [str(n).encode() for n in range(12)]


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_receipts_of_an_earlier_connection_are_not_acknowledged(
    persistent_broker: MosquittoService, protocol: str
) -> None:
    mosquitto = persistent_broker
    async with session(mosquitto, protocol=protocol) as mqtt:
        async with device(mosquitto) as dev:
            await dev.publish(TOPIC, b"once", qos=1)
        (first,), old = await messages(mqtt)
        await asyncio.to_thread(mosquitto.restart)  # the session is persisted
        await wait_for(lambda: mqtt.health.reconnects == 1, "reconnected")
        (again,), new = await messages(mqtt)
        mqtt.ack(old)  # an earlier connection's receipt: skipped
        await asyncio.sleep(0.3)
    async with session(mosquitto, protocol=protocol) as mqtt:
        (third,), receipts = await messages(mqtt)
        mqtt.ack(receipts)
        await asyncio.sleep(0.3)
    async with session(mosquitto, protocol=protocol) as mqtt:
        assert await nothing_comes(mqtt)
    assert first.payload == again.payload == third.payload == b"once"
    assert (first.dup, again.dup, third.dup) == (False, True, True)
    assert old != new


async def test_a_silent_broker_is_given_up_and_the_session_comes_back(
    mosquitto: MosquittoService,
) -> None:
    assert mosquitto.process is not None
    pid = mosquitto.process.pid
    async with session(mosquitto) as mqtt:
        os.kill(pid, signal.SIGSTOP)  # the socket stays open; nothing answers
        try:
            await wait_for(lambda: not mqtt.health.connected, "gave up", timeout_s=20)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert "no answer from the broker for 7.5 s" in (mqtt.health.last_error or "")
        await wait_for(lambda: mqtt.health.reconnects == 1, "reconnected", timeout_s=30)
        async with device(mosquitto) as dev:
            await dev.publish(TOPIC, b"after", qos=1)
        got: list[Message] = []
        while not got:
            got, receipts = await messages(mqtt)
            mqtt.ack(receipts)
    assert [m.payload for m in got] == [b"after"]
