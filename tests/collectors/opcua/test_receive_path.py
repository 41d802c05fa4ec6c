"""The receive path's two queues: the Inbox between asyncua's publish loop and the receive task
(order, DROP_OLDEST, failure), and the ReadingStream the receive task fills a batch at a time
(order, BLOCK)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from asyncua import ua

from collectors.base import SourceHealth
from collectors.opcua.subscription import Inbox, SubscriptionLostError
from collectors.opcua.wire import Change
from collectors.support import ReadingStream
from taktline.records import Reading

NOW = dt.datetime(2026, 11, 26, 9, 41, tzinfo=dt.UTC)


def notes(*handles: int) -> list[Change]:
    return [Change(h, ua.VariantType.Int64.value, h, 0, NOW, NOW) for h in handles]


def handles(items: list[Change]) -> list[int]:
    return [item.handle for item in items]


async def test_notifications_are_taken_in_order_at_most_so_many_at_a_time() -> None:
    inbox = Inbox(10)
    inbox.put_many(notes(1, 2, 3))
    inbox.put_many(notes(4, 5))
    assert handles(await inbox.take(1.0, most=3)) == [1, 2, 3]
    assert handles(await inbox.take(1.0, most=3)) == [4, 5]
    assert await inbox.take(0.01, most=3) == []  # nothing came within the wait
    assert inbox.dropped == 0


async def test_a_full_inbox_drops_the_oldest_and_counts_them() -> None:
    inbox = Inbox(4)
    inbox.put_many(notes(1, 2, 3))
    inbox.put_many(notes(4, 5, 6))
    assert inbox.dropped == 2
    inbox.put_many(notes(*range(10, 16)))  # more than fit at once: only the newest stay
    assert inbox.dropped == 8
    assert handles(await inbox.take(1.0, most=100)) == [12, 13, 14, 15]


async def test_a_waiting_take_wakes_on_notifications_and_fails_once_drained() -> None:
    inbox = Inbox(10)
    waiting = asyncio.create_task(inbox.take(5.0, most=10))
    await asyncio.sleep(0.01)
    inbox.put_many(notes(7))
    assert handles(await waiting) == [7]
    inbox.put_many(notes(8))
    inbox.fail("subscription ended: BadShutdown")
    inbox.fail("a later reason is not kept")
    assert handles(await inbox.take(1.0, most=10)) == [8]  # what came first is still taken
    with pytest.raises(SubscriptionLostError, match="BadShutdown"):
        await inbox.take(1.0, most=10)
    inbox.reset()  # a new session: the failure is forgotten
    assert await inbox.take(0.01, most=10) == []


def readings(*values: int) -> list[Reading]:
    return [Reading("src", "addr", v, None, None, NOW + dt.timedelta(seconds=v)) for v in values]


async def test_a_batch_larger_than_the_stream_waits_and_arrives_whole_in_order() -> None:
    health = SourceHealth("src")
    stream = ReadingStream(health, maxsize=4)
    producer = asyncio.create_task(stream.put_many(readings(*range(1, 11))))
    await asyncio.sleep(0.01)
    assert not producer.done()  # back-pressure: 4 wait, the rest is held back, none dropped
    assert health.last_data_at == NOW + dt.timedelta(seconds=10)
    values = []
    async for item in stream:
        values.append(item.value)
        if item.value == 10:
            break
    await producer
    await stream.put_many([])
    await stream.put(readings(11)[0])
    stream.close()
    assert values + [r.value async for r in stream] == list(range(1, 12))
