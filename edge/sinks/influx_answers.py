"""What an InfluxDB write answer means for the batch: v1 `/write` and v2 `/api/v2/write` alike.

| answer | error | the batch |
|---|---|---|
| 204 | - | delivered |
| network error, timeout, 5xx, 408, 429 | SinkUnavailableError (+ Retry-After) | retried |
| 401, 403 (credentials), 404 (database or bucket missing) | SinkUnavailableError | held |
| any other 4xx (bad points, field type conflict) | BatchRejectedError | skipped, counted |

A batch refused with such a 4xx would be refused again on every retry and hold back everything
after it, until the outbox fills and the edge stops counting. It is skipped instead: the error
is logged with InfluxDB's message and counted in the sink's health. InfluxDB writes the valid
points of a batch and rejects only the bad ones ("partial write"), and the next point of each
counter carries its lifetime total again, so no unit goes missing from the totals.
"""

from __future__ import annotations

import email.utils
import time

from edge.sinks.errors import BatchRejectedError, SinkUnavailableError

RETRY_4XX = frozenset({401, 403, 404, 408, 429})
MAX_RETRY_AFTER_S = 300.0
"""A Retry-After beyond this is capped: the sink tries again after five minutes at the latest."""


def raise_for_answer(status: int, message: str, retry_after: str | None = None) -> None:
    """Return on 204 (and any 2xx); raise the error of the table above otherwise."""
    if 200 <= status < 300:
        return
    text = f"InfluxDB answered {status}: {message}"
    if status >= 500 or status in RETRY_4XX:
        raise SinkUnavailableError(text, retry_after_s=parse_retry_after(retry_after))
    raise BatchRejectedError(text)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date), capped; None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(0.0, when.timestamp() - time.time()), MAX_RETRY_AFTER_S)
