"""The sink protocol and the health a sink reports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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
    errors_by_reason: dict[str, int] = field(default_factory=dict)
    """`unavailable` (held, retried) or `rejected` (refused for good)."""
    rejected: int = 0
    writes: int = 0
    """Batches the destination accepted; with `write_seconds`, the write latency."""
    write_seconds: float = 0.0
    last_error: str | None = None
    oldest_pending_ns: int | None = None

    def failed(self, reason: str, error: str) -> None:
        """Count a failed delivery (`unavailable` or `rejected`) and keep its message."""
        self.errors += 1
        self.errors_by_reason[reason] = self.errors_by_reason.get(reason, 0) + 1
        self.last_error = error


class Sink(Protocol):
    """A destination of the outbox, with its own cursor named `name`."""

    name: str
    batch_size: int
    flush_interval_s: float
    """A batch short of batch_size waits until its oldest update is this old (0: at once)."""
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
