"""Dropping duplicate messages by message id (QoS 1 redelivery, a device that sends twice)."""

from __future__ import annotations

from collections import OrderedDict


class RecentIds:
    """The last `window` message ids seen for each reading address."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._seen: dict[str, OrderedDict[str, None]] = {}

    def seen_before(self, address: str, message_id: str) -> bool:
        """True when `message_id` came for `address` within the window; remembers it."""
        if self.window == 0:
            return False
        seen = self._seen.setdefault(address, OrderedDict())
        if message_id in seen:
            seen.move_to_end(message_id)
            return True
        seen[message_id] = None
        if len(seen) > self.window:
            seen.popitem(last=False)
        return False
