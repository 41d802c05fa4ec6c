"""Which counter a reading belongs to: (source id, node or topic) from the plant's mappings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from taktline.model.assets import Counter
from taktline.model.paths import CounterPath
from taktline.model.plant import Plant
from taktline.model.sources import MqttSource, OpcUaSource, Source


@dataclass(frozen=True, slots=True)
class MappedCounter:
    """A plant counter with its path."""

    path: CounterPath
    counter: Counter


class SourceMap:
    """The sources an edge reads and where each of their addresses counts."""

    def __init__(self, plant: Plant, source_ids: Sequence[str] | None = None) -> None:
        wanted = set(source_ids) if source_ids is not None else None
        self.sources: list[Source] = [
            source for source in plant.sources if wanted is None or source.id in wanted
        ]
        self._by_address: dict[tuple[str, str], MappedCounter] = {}
        for source in self.sources:
            for address, text in _addresses(source, plant):
                path = CounterPath.parse(text)
                counter = plant.counter(path)
                if counter is None:
                    raise ValueError(f"source {source.id}: {address} maps to unknown {path}")
                self._by_address[(source.id, address)] = MappedCounter(path, counter)
        order = {line.line.id: index for index, line in enumerate(plant.lines())}
        self.lines: list[str] = sorted(
            {mapped.path.line for mapped in self._by_address.values()}, key=order.__getitem__
        )

    def lookup(self, source_id: str, address: str) -> MappedCounter | None:
        """The counter a reading of this source and address counts, or None."""
        return self._by_address.get((source_id, address))

    def addresses(self) -> dict[tuple[str, str], MappedCounter]:
        """Every (source id, address) these sources read, with the counter it counts."""
        return dict(self._by_address)

    def counters(self) -> dict[CounterPath, Counter]:
        """Every counter these sources feed."""
        return {mapped.path: mapped.counter for mapped in self._by_address.values()}


def _addresses(source: Source, plant: Plant) -> list[tuple[str, str]]:
    match source:
        case OpcUaSource():
            return [(node.address, node.counter) for node in source.nodes]
        case MqttSource():
            return source.addresses(path for path, _ in plant.counters())
