"""Backoff, throttle, outage log and the reading stream shared by the collectors."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest

from collectors import support
from collectors.base import SourceHealth
from collectors.support import BackgroundCollector, Backoff, OutageLog, ReadingStream, Throttle
from taktline.records import Reading

NOW = dt.datetime(2026, 11, 26, 9, 41, tzinfo=dt.UTC)


def reading(value: int) -> Reading:
    return Reading("src", "addr", value, None, None, NOW)


def test_backoff_grows_with_jitter_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(0.5, 8.0)
    delays = [backoff.next_delay() for _ in range(10)]
    ceilings = [min(8.0, 0.5 * 2**n) for n in range(10)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays) <= 8.0
    assert len({round(d, 6) for d in delays[5:]}) > 1  # jittered, not one fixed value
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_backoff_rejects_a_cap_below_the_base() -> None:
    with pytest.raises(ValueError):
        Backoff(5, 1)


def test_throttle_lets_each_key_through_once_per_period() -> None:
    throttle = Throttle(period_s=60)
    assert [throttle.ready("a"), throttle.ready("a"), throttle.ready("b")] == [True, False, True]
    assert Throttle(period_s=0).ready("a") and Throttle(period_s=0).ready("a")


def test_outage_is_logged_once_and_recovery_once(caplog: pytest.LogCaptureFixture) -> None:
    health = SourceHealth("plc")
    outage = OutageLog(logging.getLogger("test.outage"), health)
    outage.connected()
    with caplog.at_level(logging.INFO, logger="test.outage"):
        for attempt in range(3):
            outage.failed(f"refused {attempt}")
        assert (health.connected, health.last_error) == (False, "refused 2")
        outage.connected()
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
    assert "recovered after 3" in caplog.records[1].getMessage()
    assert health.connected


async def test_stream_blocks_when_full_and_ends_after_close() -> None:
    stream = ReadingStream(SourceHealth("src"), maxsize=2)
    await stream.put(reading(1))
    await stream.put(reading(2))
    blocked = asyncio.create_task(stream.put(reading(3)))
    await asyncio.sleep(0.05)
    assert not blocked.done()  # back-pressure: the producer waits, nothing is dropped
    values = []
    async for item in stream:
        values.append(item.value)
        if item.value == 3:
            break
    await blocked
    stream.close()
    assert values == [1, 2, 3]
    assert [r async for r in stream] == []


async def test_closing_a_full_stream_still_delivers_what_is_queued() -> None:
    stream = ReadingStream(SourceHealth("src"), maxsize=2)
    await stream.put(reading(1))
    await stream.put(reading(2))
    stream.close()
    assert [r.value async for r in stream] == [1, 2]


async def test_a_waiting_consumer_wakes_on_close_and_sees_a_failure() -> None:
    stream = ReadingStream(SourceHealth("src"))

    async def first() -> Reading:
        return await anext(aiter(stream))

    consumer = asyncio.create_task(first())
    await asyncio.sleep(0.05)
    stream.fail(RuntimeError("collector died"))
    with pytest.raises(RuntimeError, match="collector died"):
        await consumer


class SwallowsOneCancel(BackgroundCollector):
    """A collector whose library turns the first cancellation into an error of its own, and
    which then reconnects, as the OPC UA collector did when its goodbye timed out."""

    def __init__(self) -> None:
        self.source_id = "plc"
        self.health = SourceHealth("plc")
        self._stream = ReadingStream(self.health)
        self.attempts = 0

    async def _run(self) -> None:
        while True:
            self.attempts += 1
            try:
                await asyncio.sleep(3600)  # a session
            except asyncio.CancelledError:
                if self.attempts > 1:
                    raise
                await asyncio.sleep(0)  # the goodbye times out: "reconnecting"


async def test_leaving_cancels_again_a_task_that_swallowed_the_cancel(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(support, "STOP_GRACE_S", 0.2)
    collector = SwallowsOneCancel()
    async with asyncio.timeout(10):
        async with collector:
            await asyncio.sleep(0.05)
    assert collector.attempts == 2
    assert collector._task is not None and collector._task.cancelled()
    assert "plc: still running 0.2s after the stop; cancelling it again" in caplog.text
