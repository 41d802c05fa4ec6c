"""The collector protocol: an async context manager whose readings are an async iterator.

A collector connects to one source of the plant file, keeps itself connected (reconnecting with
backoff, logging once on failure and once on recovery), and yields every value it receives as a
`Reading` whose `address` is the node or topic string of the source's mapping.

A collector whose source redelivers what was not acknowledged (MQTT QoS 1) is also
`Acknowledging`: its readings carry a `receipt`, and the edge hands the receipts back, in order,
after the outbox commit that holds those readings. Other collectors ignore receipts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from taktline.records import Reading


@dataclass(slots=True)
class SourceHealth:
    """What the edge reports about a source."""

    source_id: str
    connected: bool = False
    last_data_at: dt.datetime | None = None
    reconnects: int = 0
    resubscribes: int = 0
    """Subscriptions rebuilt on the same session (an OPC UA subscription that fell silent)."""
    readings: int = 0
    """Readings the edge took from this source."""
    last_error: str | None = None
    rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)


class Collector(Protocol):
    """One source's collector."""

    source_id: str
    health: SourceHealth

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def readings(self) -> AsyncIterator[Reading]:
        """Every reading, in arrival order, until the collector is closed."""
        ...


@runtime_checkable
class Acknowledging(Protocol):
    """A collector that acknowledges to its source only what the edge has stored."""

    def acknowledge(self, receipts: Sequence[int]) -> None:
        """The readings with these receipts are in the outbox (or were discarded by the edge)."""
        ...
