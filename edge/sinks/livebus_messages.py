"""What the live-bus sink publishes for a batch: one retained message per counter.

A counter topic holds a counter's latest state, so within a batch only the newest update of each
counter is published; its `delta` is the sum of the deltas of every update of that counter in
the batch (the change since the previous message on the topic, when the previous batch was
delivered). Bodies follow `taktline.livebus.CounterMessage`, formatted directly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

from taktline.livebus import counter_topic, format_ts
from taktline.model.paths import CounterPath
from taktline.mqttwire import binary
from taktline.records import CounterUpdate


class Coalesced(NamedTuple):
    """The newest update of one counter in a batch and the sum of its deltas there."""

    update: CounterUpdate
    delta: int


def coalesce(updates: Sequence[CounterUpdate]) -> list[Coalesced]:
    """One entry per counter, in order of each counter's first update in the batch.

    A counter path hashes in Python (a frozen dataclass), so each is looked up once where it
    can be: most counters change once a batch.
    """
    newest: dict[CounterPath, CounterUpdate] = {}
    summed: dict[CounterPath, int] = {}
    """Delta sums of the counters with more than one update."""
    for update in updates:
        known = len(newest)
        previous = newest.setdefault(update.counter, update)
        if len(newest) == known:  # a repeat: the newest update, the deltas summed
            path = update.counter
            summed[path] = summed.get(path, previous.delta) + update.delta
            newest[path] = update
    if not summed:
        return [Coalesced(update, update.delta) for update in newest.values()]
    return [Coalesced(update, summed.get(path, update.delta)) for path, update in newest.items()]


def counter_body(update: CounterUpdate, delta: int, stamps: Stamps | None = None) -> str:
    """The JSON body of a counter topic (`CounterMessage`), with the coalesced `delta`;
    `stamps` formats its `ts` (`format_ts` without)."""
    _, ts, raw, total, _, quality = update
    stamp = stamps(ts) if stamps is not None else format_ts(ts)
    raw_text = "null" if raw is None else raw
    return (
        f'{{"total":{total},"delta":{delta},"raw":{raw_text},'
        f'"quality":"{quality.value}","ts":"{stamp}"}}'
    )


_MILLIS = [f"{ms:03d}Z" for ms in range(1000)]


class Stamps:
    """`format_ts` for many datetimes close in time: the text up to the second is made once per
    second (a quarter of the cost); datetimes not in UTC go to `format_ts`."""

    MOST = 4096
    """Seconds remembered; past this the memory starts over."""

    def __init__(self) -> None:
        self._seconds: dict[float, str] = {}

    def __call__(self, ts: dt.datetime) -> str:
        """`format_ts(ts)`: ISO 8601, UTC, milliseconds, `Z`."""
        if ts.tzinfo is not dt.UTC:
            return format_ts(ts)
        second = ts.timestamp() // 1
        prefix = self._seconds.get(second)
        if prefix is None:
            if len(self._seconds) >= self.MOST:
                self._seconds.clear()
            prefix = self._seconds[second] = format_ts(ts)[:-4]
        return prefix + _MILLIS[ts.microsecond // 1000]


class Topics:
    """Counter topics as the length-prefixed bytes of a PUBLISH, built once per counter."""

    def __init__(self) -> None:
        self._topics: dict[CounterPath, bytes] = {}

    def __call__(self, path: CounterPath) -> bytes:
        """The retained topic of `path`, encoded."""
        topic = self._topics.get(path)
        if topic is None:
            topic = self._topics[path] = binary(counter_topic(path).encode())
        return topic
