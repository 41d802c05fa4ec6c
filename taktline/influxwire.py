"""What the edge and the server share to write InfluxDB points: line-protocol escapes, epoch
nanoseconds, and InfluxDB's error text from an answer (`server` may not import `edge`)."""

from __future__ import annotations

import datetime as dt

import httpx

_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STRING_ESCAPES = str.maketrans({'"': r"\"", "\\": "\\\\"})
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US_PER_DAY = 86_400_000_000


def escape_tag(text: str) -> str:
    """A tag key or value for line protocol (commas, equals signs and spaces escaped)."""
    return text.translate(_TAG_ESCAPES)


def escape_string(text: str) -> str:
    """A string field's content for line protocol (quotes and backslashes escaped)."""
    return text.translate(_STRING_ESCAPES)


def epoch_ns(ts: dt.datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime (microsecond precision)."""
    since = ts - _EPOCH
    return (since.days * _US_PER_DAY + since.seconds * 1_000_000 + since.microseconds) * 1000


def error_text(response: httpx.Response, limit: int = 500) -> str:
    """InfluxDB's error from a JSON `{"error": ...}` (v1) or `{"message": ...}` (v2) body, else
    the raw body, at most `limit` characters."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = (body.get("error") or body.get("message")) if isinstance(body, dict) else None
    return str(error) if error else response.text.strip()[:limit]
