"""Which mapping reads a topic, and the reading address it gets: mapping table, templates.

The mapping table (`topics`) comes first, in file order; then the templates, in file order.
A template match gets the template with the placeholders filled in as its address (`+` and `#`
stay as written), which is what `MqttSource.addresses` expands the plant's counters into.
"""

from __future__ import annotations

from dataclasses import dataclass

from paho.mqtt.client import topic_matches_sub

from taktline.model.sources import MqttPayload, MqttSource

_CACHE_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Route:
    """How to read the messages of one topic, and their reading address."""

    payload: MqttPayload
    address: str


class Router:
    """Routes topics of one source; remembers up to 10,000 answers (then starts afresh)."""

    def __init__(self, source: MqttSource) -> None:
        self._exact = {t.topic: t for t in reversed(source.topics) if not _is_filter(t.topic)}
        self._order = {id(t): i for i, t in enumerate(source.topics)}
        self._filters = [t for t in source.topics if _is_filter(t.topic)]
        self._templates = [(t, t.topic.split("/")) for t in source.templates]
        self._cache: dict[str, Route | None] = {}
        self.subscriptions = list(
            dict.fromkeys(
                [t.topic for t in source.topics] + [t.subscription for t in source.templates]
            )
        )

    def route(self, topic: str) -> Route | None:
        """The route of `topic`, or None when no mapping or template matches."""
        try:
            return self._cache[topic]
        except KeyError:
            pass
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        found = self._cache[topic] = self._find(topic)
        return found

    def _find(self, topic: str) -> Route | None:
        exact = self._exact.get(topic)
        matching = next((t for t in self._filters if topic_matches_sub(t.topic, topic)), None)
        if exact is not None or matching is not None:
            first = min(
                (t for t in (exact, matching) if t is not None), key=lambda t: self._order[id(t)]
            )
            return Route(first, first.topic)
        levels = topic.split("/")
        for template, pattern in self._templates:
            values = _capture(pattern, levels)
            if values is not None:
                return Route(template, template.render(values))
        return None


def _capture(pattern: list[str], levels: list[str]) -> dict[str, str] | None:
    """Placeholder values when `levels` match the template levels `pattern`, else None."""
    values: dict[str, str] = {}
    for index, part in enumerate(pattern):
        if part == "#":
            return values
        if index >= len(levels):
            return None
        level = levels[index]
        if part.startswith("{"):
            if not level:
                return None
            values[part[1:-1]] = level
        elif part != "+" and part != level:
            return None
    return values if len(levels) == len(pattern) else None


def _is_filter(topic: str) -> bool:
    return "+" in topic.split("/") or topic.endswith("#")
