"""Delivers alert messages to channels, each channel on its own so none delays another.

    notifier = Notifier(policy, on_result=record)      # record(Delivery) per message and channel
    async with notifier:
        notifier.send(Message(id="line3/stopped#1", title=..., body=..., ack_url=...), channels)

Each channel has a lane: a bounded queue, a worker task and one thread of its own. `send`
only enqueues. The worker takes one message at a time and tries it until it is delivered or
`max_attempts` attempts have failed, pausing between attempts with capped exponential backoff
and jitter (`RetryPolicy.backoff_s`); then it reports the message failed and goes on with the
next one. Messages keep their order per channel.

Apprise's notify blocks (smtplib, requests), so each attempt runs in the lane's own thread
and counts as failed when it has not answered within `attempt_timeout_s`. Python cannot stop
that thread: it ends when the plugin's socket timeouts expire (apprise's `cto`/`rto`, 4 s
each for web hooks, 15 s to connect for mail), and the lane's next attempt waits for it. A
shared pool (`asyncio.to_thread`) would let a few hung channels hold every thread and delay
all others; one thread per lane cannot. An attempt that timed out may still have delivered:
delivery is at least once.

When a lane's queue is full, the oldest waiting message is dropped and reported (policy
`drop-oldest`: the newest alert matters most). Per channel the notifier counts `delivered`,
`failed` (gave up after max_attempts) and `dropped`, and logs once when a channel starts to
fail and once when it delivers again. `on_result` gets one `Delivery` per message and channel,
so the escalation engine can record "notified" or move on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType

import apprise

from server.alerts.channels import Channel, apprise_warnings
from taktline.config.settings import RetryPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    """One alert notification. `id` is the alert's key and its sequence (`line3/stopped#2`)."""

    id: str
    title: str
    body: str
    ack_url: str | None = None

    def text(self) -> str:
        """The body as sent: plain text, the acknowledge link (when there is one) last."""
        if self.ack_url is None:
            return self.body
        return f"{self.body}\n\nAcknowledge: {self.ack_url}"


@dataclass(frozen=True)
class Delivery:
    """How one message went on one channel. `error` is apprise's reason, scrubbed."""

    message_id: str
    channel: Channel
    delivered: bool
    attempts: int
    error: str | None = None


@dataclass
class ChannelStats:
    """Counters of one channel; `failing` while its last attempt failed."""

    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    failing: bool = False


@dataclass
class _Lane:
    channel: Channel
    queue: asyncio.Queue[Message]
    executor: ThreadPoolExecutor
    stats: ChannelStats = dataclasses.field(default_factory=ChannelStats)
    task: asyncio.Task[None] | None = None
    overflowing: bool = False


class Notifier:
    """Sends messages to channels, one lane per channel; use `async with`, or `aclose()`."""

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        on_result: Callable[[Delivery], None] | None = None,
    ):
        self.policy = policy if policy is not None else RetryPolicy()
        self._on_result = on_result
        self._lanes: dict[Channel, _Lane] = {}
        self._rng = random.Random()
        self._closed = False

    async def __aenter__(self) -> Notifier:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def send(self, message: Message, channels: Iterable[Channel]) -> None:
        """Queue `message` on each channel and return at once (in the event loop)."""
        if self._closed:
            raise RuntimeError("the notifier is closed")
        for channel in dict.fromkeys(channels):
            lane = self._lane(channel)
            if lane.queue.full():
                self._drop_oldest(lane)
            lane.queue.put_nowait(message)

    @property
    def closed(self) -> bool:
        """Whether `aclose` was called (a closed notifier sends nothing more)."""
        return self._closed

    def stats(self) -> dict[Channel, ChannelStats]:
        """A snapshot of every channel's counters."""
        return {channel: dataclasses.replace(lane.stats) for channel, lane in self._lanes.items()}

    async def join(self) -> None:
        """Wait until every queued message is delivered, failed or dropped."""
        for lane in list(self._lanes.values()):
            await lane.queue.join()

    async def aclose(self) -> None:
        """Stop every lane; what is still queued is not sent (it is taken off, so `join`
        returns)."""
        self._closed = True
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for lane in self._lanes.values():
            lane.executor.shutdown(wait=False, cancel_futures=True)
            while not lane.queue.empty():
                lane.queue.get_nowait()
                lane.queue.task_done()

    def _lane(self, channel: Channel) -> _Lane:
        lane = self._lanes.get(channel)
        if lane is None:
            lane = _Lane(
                channel=channel,
                queue=asyncio.Queue(self.policy.queue_size),
                executor=ThreadPoolExecutor(1, thread_name_prefix="alert-channel"),
            )
            lane.task = asyncio.get_running_loop().create_task(
                self._work(lane), name=f"alert channel {channel}"
            )
            self._lanes[channel] = lane
        return lane

    def _drop_oldest(self, lane: _Lane) -> None:
        dropped = lane.queue.get_nowait()
        lane.queue.task_done()
        if not lane.overflowing:
            lane.overflowing = True
            log.warning(
                "alert channel %s: queue full (%d); dropping the oldest waiting messages",
                lane.channel,
                self.policy.queue_size,
            )
        lane.stats.dropped += 1
        self._report(Delivery(dropped.id, lane.channel, False, 0, "dropped: the queue was full"))

    async def _work(self, lane: _Lane) -> None:
        while True:
            message = await lane.queue.get()
            try:
                await self._deliver(lane, message)
            finally:
                lane.queue.task_done()

    async def _deliver(self, lane: _Lane, message: Message) -> None:
        attempts = 0
        while True:
            attempts += 1
            error = await self._attempt(lane, message)
            if error is None:
                lane.stats.delivered += 1
                lane.overflowing = False
                if lane.stats.failing:
                    log.info("alert channel %s delivers again", lane.channel)
                    lane.stats.failing = False
                self._report(Delivery(message.id, lane.channel, True, attempts))
                return
            if not lane.stats.failing:
                log.warning(
                    "alert channel %s fails (%s); retrying with backoff", lane.channel, error
                )
                lane.stats.failing = True
            if attempts >= self.policy.max_attempts:
                lane.stats.failed += 1
                self._report(Delivery(message.id, lane.channel, False, attempts, error))
                return
            await asyncio.sleep(self.policy.backoff_s(attempts, self._rng))

    async def _attempt(self, lane: _Lane, message: Message) -> str | None:
        """None when delivered, else why not (scrubbed of the channel's secrets)."""
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(
            lane.executor, _notify, lane.channel.url, message.title, message.text()
        )
        try:
            error = await asyncio.wait_for(call, self.policy.attempt_timeout_s)
        except TimeoutError:
            return f"no answer within {self.policy.attempt_timeout_s:g} s"
        return None if error is None else lane.channel.scrub(error)

    def _report(self, delivery: Delivery) -> None:
        if self._on_result is None:
            return
        try:
            self._on_result(delivery)
        except Exception:  # a bug in the callback must not end the channel's lane
            log.exception("alert delivery: on_result failed for %s", delivery.message_id)


def _notify(url: str, title: str, body: str) -> str | None:
    """One blocking apprise attempt (in a lane's thread): None, or apprise's reason."""
    with apprise_warnings() as reasons:
        # In this thread (the lane's), with no deadline of apprise's own: by default apprise
        # hands each service to a process-wide pool, which hung channels could fill.
        sender = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False, service_timeout=0))
        try:
            loaded = sender.add(url)
            sent = loaded and bool(
                sender.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT)
            )
        except Exception as exc:  # noqa: BLE001 - a plugin's bug is this attempt's failure
            return f"{type(exc).__name__}: {exc}"
    if sent:
        return None
    if not loaded:
        return "apprise cannot load the channel URL"
    return "; ".join(dict.fromkeys(reasons)) or "apprise reports a failure without a reason"
