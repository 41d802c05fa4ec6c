"""A paced QoS 1 publisher of the MQTT benchmark's messages, for the rate steps of `nodered_peer`.

    python -m bench.mqtt_pace --port P --rate R --seconds S

Publishes R x S messages of `bench.mqtt_load.payload` (80-byte JSON, `count` 1..N, `ts`) to
`bench.mqtt_load.TOPIC` at QoS 1, spread evenly over S seconds (a batch every TICK_S, sleeping in
between), and ends when the broker acknowledged every one. paho tops out near 12,000 QoS 1
publishes a second at a whole core (5,700 with 1,000 in flight): below what the consumers take,
and it would starve them on a small machine. This one encodes packets with taktline.mqttwire and
writes each tick's batch with one system call (40,000 messages/s at about 12% of a core). It
prints JSON lines: `connected` as it starts publishing, `progress` (sent, acknowledged) every
second, and `done` with `count`, `seconds` (first message to the last one sent), `sent_at` (the
last one's wall-clock time, epoch seconds), `acked_s` (to the last PUBACK) and `cpu_s`.
"""

from __future__ import annotations

import argparse
import select
import socket
import time

from bench.mqtt_load import TOPIC, emit, payload
from taktline.mqttwire import (
    Frames,
    PacketType,
    binary,
    connect_packet,
    parse_connack,
    parse_puback,
    publish_packet,
)

TICK_S = 0.005
MAX_IN_FLIGHT = 20_000
"""Unacknowledged messages at most (packet ids are 16 bits)."""
CLIENT_ID = "bench-pacer"
_TIMEOUT_S = 60.0


class _Broker:
    """A blocking MQTT 5 connection that writes packets and counts PUBACKs."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=_TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.frames = Frames()
        self.acked = 0
        self.sock.sendall(connect_packet("5", CLIENT_ID, 0))
        kind, body = self._next_packet()
        if kind >> 4 != PacketType.CONNACK or not parse_connack("5", body).accepted:
            raise ConnectionError(f"the broker refused the connection (packet {kind:#x})")

    def _next_packet(self) -> tuple[int, bytes]:
        while True:
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionError("the broker closed the connection")
            packets = self.frames.feed(data)
            if packets:
                return packets[0]

    def read_acks(self) -> None:
        """Count the PUBACKs that have arrived."""
        readable, _, _ = select.select([self.sock], [], [], 0)
        if not readable:
            return
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("the broker closed the connection")
        for kind, body in self.frames.feed(data):
            if kind >> 4 != PacketType.PUBACK:
                continue
            packet_id, reason = parse_puback(body)
            if reason >= 0x80:
                raise ConnectionError(f"the broker refused message {packet_id} ({reason:#x})")
            self.acked += 1

    def close(self) -> None:
        """DISCONNECT and close."""
        self.sock.sendall(b"\xe0\x00")
        self.sock.close()


def pace(port: int, rate: float, seconds: float) -> None:
    """Publish rate x seconds messages evenly over `seconds`, then wait for their PUBACKs."""
    count = round(rate * seconds)
    broker = _Broker(port)
    topic = binary(TOPIC.encode())
    sent = 0
    started = time.monotonic()
    cpu0 = time.process_time()
    report_at = started + 1.0
    sent_s = sent_at = 0.0
    emit("connected", count=count)
    while broker.acked < count:
        now = time.monotonic()
        due = min(count, int((now - started) * rate) + 1, broker.acked + MAX_IN_FLIGHT)
        if due > sent:
            batch = [
                publish_packet("5", topic, payload(n), (n - 1) % 0xFFFF + 1, retain=False)
                for n in range(sent + 1, due + 1)
            ]
            broker.sock.sendall(b"".join(batch))
            sent = due
            if sent == count:
                sent_s, sent_at = time.monotonic() - started, time.time()
        broker.read_acks()
        if now >= report_at:
            emit("progress", sent=sent, acked=broker.acked, seconds=now - started)
            report_at += 1.0
        if now - started > seconds + _TIMEOUT_S:
            raise TimeoutError(f"{count - broker.acked} messages unacknowledged")
        time.sleep(max(0.0, TICK_S - (time.monotonic() - now)))
    emit(
        "done",
        count=count,
        seconds=sent_s,
        sent_at=sent_at,
        acked_s=time.monotonic() - started,
        cpu_s=time.process_time() - cpu0,
    )
    broker.close()


def main(argv: list[str] | None = None) -> None:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m bench.mqtt_pace")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rate", type=float, required=True, help="messages per second")
    p.add_argument("--seconds", type=float, required=True)
    a = p.parse_args(argv)
    pace(a.port, a.rate, a.seconds)


if __name__ == "__main__":
    main()
