"""What the live-bus sink publishes for a batch: one retained message per counter.

A counter topic holds a counter's latest state, so within a batch only the newest update of each
counter is published; its `delta` is the sum of the deltas of every update of that counter in
the batch (the change since the previous message on the topic, when the previous batch was
delivered). Bodies follow `taktline.livebus.CounterMessage`, formatted directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from taktline.livebus import counter_topic, format_ts
from taktline.model.paths import CounterPath
from taktline.mqttwire import binary
from taktline.records import CounterUpdate


@dataclass(frozen=True, slots=True)
class Coalesced:
    """The newest update of one counter in a batch and the sum of its deltas there."""

    update: CounterUpdate
    delta: int


def coalesce(updates: Sequence[CounterUpdate]) -> list[Coalesced]:
    """One entry per counter, in order of each counter's first update in the batch."""
    newest: dict[CounterPath, CounterUpdate] = {}
    deltas: dict[CounterPath, int] = {}
    for update in updates:
        path = update.counter
        newest[path] = update
        deltas[path] = deltas.get(path, 0) + update.delta
    return [Coalesced(update, deltas[path]) for path, update in newest.items()]


def counter_body(update: CounterUpdate, delta: int) -> str:
    """The JSON body of a counter topic (`CounterMessage`), with the coalesced `delta`."""
    raw = "null" if update.raw is None else str(update.raw)
    return (
        f'{{"total":{update.total},"delta":{delta},"raw":{raw},'
        f'"quality":"{update.quality.value}","ts":"{format_ts(update.ts)}"}}'
    )


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
