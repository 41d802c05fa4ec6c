"""A short history of a value, recorded when it changes, to look back over a window."""

from __future__ import annotations

import bisect
import datetime as dt
from typing import Generic, TypeVar

T = TypeVar("T")


class Series(Generic[T]):
    """Values by time, oldest first; a value equal to the newest is not recorded again."""

    def __init__(self) -> None:
        self._points: list[tuple[dt.datetime, T]] = []

    def record(self, at: dt.datetime, value: T) -> None:
        """The value is `value` from `at` on."""
        if not self._points or self._points[-1][1] != value:
            self._points.append((at, value))

    def newest(self) -> T | None:
        """The value recorded last, or None."""
        return self._points[-1][1] if self._points else None

    def at(self, when: dt.datetime) -> T | None:
        """The value at `when`: the newest recorded at or before it (None if none is)."""
        index = bisect.bisect_right(self._points, when, key=lambda point: point[0])
        return self._points[index - 1][1] if index else None

    def oldest(self) -> T | None:
        """The first value still held, or None."""
        return self._points[0][1] if self._points else None

    def forget_before(self, when: dt.datetime) -> None:
        """Drop what is not needed to answer `at(t)` for any t at or after `when`."""
        index = bisect.bisect_right(self._points, when, key=lambda point: point[0])
        if index > 1:
            del self._points[: index - 1]

    def clear(self) -> None:
        """Forget everything (the value went backwards: a reset)."""
        self._points.clear()
