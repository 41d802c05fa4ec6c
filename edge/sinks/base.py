"""The sink protocol and the health a sink reports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from taktline.records import CounterUpdate


@dataclass(slots=True)
class SinkHealth:
    """What the edge reports about a sink."""

    name: str
    connected: bool = False
    delivered: int = 0
    errors: int = 0
    rejected: int = 0
    last_error: str | None = None
    oldest_pending_ns: int | None = None


class Sink(Protocol):
    """A destination of the outbox, with its own cursor named `name`."""

    name: str
    batch_size: int
    health: SinkHealth

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def ready(self) -> None:
        """Raise SinkUnavailableError when no batch can be delivered now."""
        ...

    async def send(self, updates: Sequence[CounterUpdate]) -> None:
        """Deliver the batch (at least once) or raise a SinkError."""
        ...
