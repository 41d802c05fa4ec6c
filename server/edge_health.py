"""The edges' health from the live bus: the newest sample of every edge, validated.

Each edge publishes its health retained on `taktline/v1/_edge/{edge_id}/health`
(`taktline.livebus.EdgeHealth`). A good sample replaces the edge's older one in `latest` and is
handed to `on_sample` (the InfluxDB writer, server.edge_health_influx). A bad one never raises:
it is counted by reason in `rejected` (`malformed`: not a health body; `wrong_edge`: its
`edge_id` is not the topic's) and logged once per topic, and once more when that topic carries a
good sample again. An empty body (the retained message cleared) forgets the edge.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from pydantic import ValidationError

from taktline.livebus import EdgeHealth, parse_edge_health_topic

log = logging.getLogger(__name__)

MAX_LOGGED_TOPICS = 1000
"""Most topics remembered as failing (each logged once); beyond, rejects are only counted."""

SampleHandler = Callable[[EdgeHealth], None]


class EdgeHealthBook:
    """The newest health sample of every edge; `handle` takes in live-bus messages."""

    def __init__(self, on_sample: SampleHandler | None = None) -> None:
        self._on_sample = on_sample
        self.latest: dict[str, EdgeHealth] = {}
        """The newest sample by edge id."""
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self._failing_topics: set[str] = set()

    def handle(self, topic: str, payload: bytes) -> bool:
        """Take in one live-bus message; False when it is not on an edge health topic."""
        edge_id = parse_edge_health_topic(topic)
        if edge_id is None:
            return False
        if not payload:
            self.latest.pop(edge_id, None)
            return True
        try:
            health = EdgeHealth.model_validate_json(payload)
        except ValidationError as exc:
            self._reject(topic, "malformed", _first_error(exc))
            return True
        if health.edge_id != edge_id:
            self._reject(topic, "wrong_edge", f"edge_id {health.edge_id!r} on {edge_id!r}'s topic")
            return True
        if topic in self._failing_topics:
            self._failing_topics.discard(topic)
            log.info("edge health: %s carries good samples again", topic)
        self.accepted += 1
        newest = self.latest.get(edge_id)
        if newest is None or health.ts >= newest.ts:
            self.latest[edge_id] = health
        if self._on_sample is not None:
            self._on_sample(health)
        return True

    def _reject(self, topic: str, reason: str, detail: str) -> None:
        self.rejected[reason] += 1
        if topic not in self._failing_topics and len(self._failing_topics) < MAX_LOGGED_TOPICS:
            self._failing_topics.add(topic)
            log.warning("edge health: ignoring %s (%s: %s)", topic, reason, detail)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return f"{where}: {error['msg']}"
