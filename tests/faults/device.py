"""An MQTT device that reports every unit as one QoS 1 message with a message id, at least once.

It stands for an end-of-line tester that sends one result per vehicle (`{"vin": "V0000001"}`).
Units are made at a steady rate into the device's own queue, whatever the broker does; the queue
is sent in order, and a message the broker has not acknowledged (the broker went away) is sent
again with the same id after the device reconnected. So every unit reaches the broker, a few
twice: the edge must drop the second by its id. `made` is the ground truth.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import deque
from types import TracebackType
from typing import Self

import aiomqtt

log = logging.getLogger(__name__)

RECONNECT_S = 0.2
PUBLISH_TIMEOUT_S = 5.0


class VehicleReporter:
    """Publishes one message per unit to `topic`: `async with VehicleReporter(...) as device`."""

    def __init__(self, host: str, port: int, topic: str, rate_per_s: float) -> None:
        self.host, self.port, self.topic = host, port, topic
        self.made = 0
        """Units made so far (each has its own id)."""
        self.acknowledged = 0
        """Units the broker has acknowledged."""
        self.resent = 0
        """Messages sent again after the broker went away before acknowledging them."""
        self._interval_s = 1.0 / rate_per_s
        self._queue: deque[str] = deque()
        self._running = asyncio.Event()
        self._queued = asyncio.Event()
        self._progress = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._client_id = f"faults-device-{os.urandom(3).hex()}"

    async def __aenter__(self) -> Self:
        self._tasks = [
            asyncio.create_task(self._make(), name="device make"),
            asyncio.create_task(self._send(), name="device send"),
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def pause(self) -> None:
        """Stop making units (queued ones are still sent)."""
        self._running.clear()

    def resume(self) -> None:
        """Make units again."""
        self._running.set()

    async def settle(self) -> None:
        """Return once the broker acknowledged every unit made (bound it with a timeout)."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.acknowledged == self.made)

    async def _make(self) -> None:
        while True:
            await self._running.wait()
            await asyncio.sleep(self._interval_s)
            if self._running.is_set():
                self.made += 1
                self._queue.append(json.dumps({"vin": f"V{self.made:07d}"}))
                self._queued.set()

    async def _send(self) -> None:
        sent_unacknowledged = False
        while True:
            try:
                async with aiomqtt.Client(
                    self.host, self.port, identifier=self._client_id, timeout=PUBLISH_TIMEOUT_S
                ) as client:
                    while True:
                        if not self._queue:
                            self._queued.clear()
                            await self._queued.wait()
                            continue
                        if sent_unacknowledged:
                            self.resent += 1
                        sent_unacknowledged = True
                        await client.publish(
                            self.topic, self._queue[0], qos=1, timeout=PUBLISH_TIMEOUT_S
                        )
                        sent_unacknowledged = False
                        self._queue.popleft()
                        async with self._progress:
                            self.acknowledged += 1
                            self._progress.notify_all()
            except aiomqtt.MqttError as exc:
                log.debug("device: broker away (%s); reconnecting", exc)
            await asyncio.sleep(RECONNECT_S)
