"""The MQTT benchmark's processes: a publisher, a session registrar, and the consumers.

    python -m bench.mqtt_load publish  --port P --qos Q --count N
    python -m bench.mqtt_load register --port P --qos Q --client-id ID
    python -m bench.mqtt_load paho|aiomqtt|collector --port P --qos Q --count N --client-id ID
    python -m bench.mqtt_load edge --config EDGE_YAML --count N

Each prints one JSON line. A consumer's line: `count`, `seconds` (first message to the last,
for `edge`: to the last one committed in the outbox), `cpu_s` (the process's CPU over that
window, every thread), `rss_mb` (peak resident memory of the process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.procstat import memory_mb

TOPIC = "bench/line/eol/produced"
COUNTER = "bench/area/line/eol/produced"
SESSION_EXPIRY_S = 3600
RECEIVE_MAXIMUM = 10_000
PAYLOAD_BYTES = 80
_PUBLISH_WINDOW = 20_000


def payload(n: int) -> bytes:
    """An 80-byte JSON test result: the station's running total, a time and padding."""
    head = f'{{"count": {n}, "ts": {1_795_686_062_123 + n}, "station": "eol", "pad": "'
    return (head + "x" * (PAYLOAD_BYTES - len(head) - 2) + '"}').encode()


def emit(event: str, **fields: Any) -> None:
    """One JSON line on stdout."""
    print(json.dumps({"event": event} | fields), flush=True)


def _client(client_id: str, *, manual_ack: bool = False) -> paho.Client:
    return paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv5,
        manual_ack=manual_ack,
        reconnect_on_failure=False,
    )


def _connect(client: paho.Client, port: int, *, persistent: bool) -> None:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    if persistent:
        props.SessionExpiryInterval = SESSION_EXPIRY_S
    client.connect("127.0.0.1", port, 60, clean_start=not persistent, properties=props)


def publish(port: int, qos: int, count: int) -> None:
    """Publish `count` messages; returns once the broker holds all of them."""
    client = _client("bench-publisher")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    _connect(client, port, persistent=False)
    client.loop_start()
    started = time.monotonic()
    unacknowledged: deque[paho.MQTTMessageInfo] = deque()
    for n in range(1, count + 1):
        unacknowledged.append(client.publish(TOPIC, payload(n), qos=qos))
        if len(unacknowledged) > _PUBLISH_WINDOW:  # paho's message ids are 16 bits
            unacknowledged.popleft().wait_for_publish(600)
    marker = client.publish("bench/marker", b"", qos=1)  # after every message before it
    marker.wait_for_publish(600)
    for info in unacknowledged if qos else ():
        info.wait_for_publish(600)
    emit("published", count=count, seconds=time.monotonic() - started)
    client.disconnect()
    client.loop_stop()


def register(port: int, qos: int, client_id: str) -> None:
    """Create the consumer's persistent session and its subscription, then leave."""
    client = _client(client_id)
    subscribed = []
    client.on_subscribe = lambda *args: subscribed.append(True)
    _connect(client, port, persistent=True)
    client.subscribe(TOPIC, qos=qos)
    while not subscribed:
        client.loop(0.1)
    client.disconnect()
    emit("registered", client_id=client_id)


class _Window:
    """First message to last: wall time and process CPU."""

    def __init__(self) -> None:
        self.t0 = 0.0
        self.cpu0 = 0.0

    def start(self) -> None:
        self.t0, self.cpu0 = time.monotonic(), time.process_time()

    def done(self, count: int) -> None:
        # VmHWM, not ru_maxrss: that one also counts the benchmark's own memory, which this
        # process shared between fork and exec
        rss_mb = memory_mb(os.getpid())[1]
        emit(
            "done",
            count=count,
            seconds=time.monotonic() - self.t0,
            cpu_s=time.process_time() - self.cpu0,
            rss_mb=rss_mb,
        )


def consume_paho(port: int, qos: int, count: int, client_id: str) -> None:
    """A bare paho-mqtt subscriber that only counts (automatic acknowledgement)."""
    client = _client(client_id)
    window = _Window()
    seen = 0

    def on_message(_c: paho.Client, _u: object, _m: paho.MQTTMessage) -> None:
        nonlocal seen
        if seen == 0:
            window.start()
        seen += 1
        if seen == count:
            window.done(seen)
            client.disconnect()

    client.on_message = on_message
    _connect(client, port, persistent=True)
    client.loop_forever()


async def consume_aiomqtt(port: int, qos: int, count: int, client_id: str) -> None:
    """An aiomqtt subscriber that only counts: one asyncio hand-off per message."""
    import aiomqtt

    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    props.SessionExpiryInterval = SESSION_EXPIRY_S
    window = _Window()
    seen = 0
    async with aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=props,
    ) as client:
        async for _ in client.messages:
            if seen == 0:
                window.start()
            seen += 1
            if seen == count:
                window.done(seen)
                return


async def consume_collector(port: int, qos: int, count: int, client_id: str) -> None:
    """taktline's MqttCollector: readings taken and acknowledged in chunks of 500."""
    from collectors.mqtt import MqttCollector
    from taktline.model.sources import MqttSource

    source = MqttSource.model_validate(
        {
            "type": "mqtt",
            "id": "bench",
            "broker": {"port": port, "client_id": client_id},
            "qos": qos,
            "receive_maximum": RECEIVE_MAXIMUM,
            "topics": [{"topic": TOPIC, "counter": COUNTER, "value": "count", "timestamp": "ts"}],
        }
    )
    window = _Window()
    seen = 0
    receipts: list[int] = []
    async with MqttCollector(source) as collector:
        async for reading in collector.readings():
            if seen == 0:
                window.start()
            seen += 1
            if reading.receipt is not None:
                receipts.append(reading.receipt)
            if len(receipts) >= 500 or seen == count:
                collector.acknowledge(receipts)
                receipts = []
            if seen == count:
                window.done(seen)
                return


async def consume_edge(config: Path, count: int) -> None:
    """A whole EdgeAgent: done when the counter's state in the outbox says `count`."""
    from edge.agent import EdgeAgent
    from taktline.config.loader import load_edge_config
    from taktline.model.paths import CounterPath

    path = CounterPath.parse(COUNTER)
    window = _Window()
    async with EdgeAgent(load_edge_config(config)) as agent:
        outbox = agent.outbox
        assert outbox is not None
        while agent.total(path) is None:  # noqa: ASYNC110 (polls the agent's state)
            await asyncio.sleep(0.001)
        window.start()
        while (await outbox.states()).get(COUNTER, {}).get("total") != count:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        window.done(count)
        emit("outbox", last_seq=outbox.last_seq)


def main(argv: list[str] | None = None) -> None:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m bench.mqtt_load")
    p.add_argument("mode", choices=["publish", "register", "paho", "aiomqtt", "collector", "edge"])
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--qos", type=int, choices=[0, 1], default=1)
    p.add_argument("--count", type=int, default=100_000)
    p.add_argument("--client-id", default="bench-consumer")
    p.add_argument("--config", type=Path)
    a = p.parse_args(argv)
    match a.mode:
        case "publish":
            publish(a.port, a.qos, a.count)
        case "register":
            register(a.port, a.qos, a.client_id)
        case "paho":
            consume_paho(a.port, a.qos, a.count, a.client_id)
        case "aiomqtt":
            asyncio.run(consume_aiomqtt(a.port, a.qos, a.count, a.client_id))
        case "collector":
            asyncio.run(consume_collector(a.port, a.qos, a.count, a.client_id))
        case "edge":
            asyncio.run(consume_edge(a.config, a.count))


if __name__ == "__main__":
    main(sys.argv[1:])
