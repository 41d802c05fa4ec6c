"""What a sink raises when a batch cannot be delivered.

SinkError
 ├── SinkUnavailableError   not delivered now; the cursor holds and the batch is retried
 └── BatchRejectedError     the destination refuses this batch for good; it is skipped
"""

from __future__ import annotations


class SinkError(RuntimeError):
    """A sink could not deliver a batch."""


class SinkUnavailableError(SinkError):
    """The destination cannot be reached or is failing (network, 5xx, credentials)."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        """How long the destination asked us to wait (HTTP Retry-After), if it did."""


class BatchRejectedError(SinkError):
    """The destination refused the batch's content; resending it would fail the same way."""
