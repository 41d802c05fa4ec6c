"""Prometheus metrics of one edge, read from its health snapshot at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from edge.health import HealthSnapshot

PREFIX = "taktline_edge"


class EdgeMetrics(Collector):
    """A custom collector: one snapshot per scrape, no second set of books."""

    def __init__(self, snapshot: Callable[[], HealthSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        """Every metric family of the edge."""
        s = self._snapshot()
        yield from self._sources(s)
        yield from self._sinks(s)
        full = GaugeMetricFamily(f"{PREFIX}_outbox_full", "1 while the outbox refuses updates.")
        full.add_metric([], float(s.outbox_full))
        yield full
        dropped = CounterMetricFamily(
            f"{PREFIX}_outbox_dropped",
            "Updates dropped undelivered to make room (when_full: drop_oldest).",
        )
        dropped.add_metric([], s.outbox_dropped)
        yield dropped
        undelivered = GaugeMetricFamily(
            f"{PREFIX}_outbox_undelivered", "Updates some sink has not delivered."
        )
        undelivered.add_metric([], s.outbox_undelivered)
        yield undelivered
        decisions = CounterMetricFamily(
            f"{PREFIX}_counter_decisions",
            "Counter decisions (increase, reset, rollover, glitch, ...) per counter.",
            labels=["counter", "decision"],
        )
        for path, by_decision in s.decisions.items():
            for decision, count in by_decision.items():
                decisions.add_metric([path, decision], count)
        yield decisions
        totals = GaugeMetricFamily(
            f"{PREFIX}_counter_total", "Lifetime total per counter.", labels=["counter"]
        )
        for path, total in s.totals.items():
            if total is not None:
                totals.add_metric([path], total)
        yield totals
        unmapped = CounterMetricFamily(
            f"{PREFIX}_unmapped_readings", "Readings no counter is mapped to."
        )
        unmapped.add_metric([], s.unmapped_readings)
        yield unmapped

    def _sources(self, s: HealthSnapshot) -> Iterator[Metric]:
        connected = GaugeMetricFamily(
            f"{PREFIX}_source_connected", "1 while the source is connected.", labels=["source"]
        )
        reconnects = CounterMetricFamily(
            f"{PREFIX}_source_reconnects", "Reconnects per source.", labels=["source"]
        )
        resubscribes = CounterMetricFamily(
            f"{PREFIX}_source_resubscribes",
            "Subscriptions rebuilt on the same session (fell silent).",
            labels=["source"],
        )
        readings = CounterMetricFamily(
            f"{PREFIX}_source_readings", "Readings taken from the source.", labels=["source"]
        )
        refused = CounterMetricFamily(
            f"{PREFIX}_source_rejected",
            "Bad input refused by the collector, by reason.",
            labels=["source", "reason"],
        )
        last_data = GaugeMetricFamily(
            f"{PREFIX}_source_last_data_timestamp_seconds",
            "When the source last delivered data.",
            labels=["source"],
        )
        for source in s.sources:
            connected.add_metric([source.source_id], float(source.connected))
            reconnects.add_metric([source.source_id], source.reconnects)
            resubscribes.add_metric([source.source_id], source.resubscribes)
            readings.add_metric([source.source_id], source.readings)
            for reason, count in source.rejected_by_reason.items():
                refused.add_metric([source.source_id, reason], count)
            if source.last_data_at is not None:
                last_data.add_metric([source.source_id], source.last_data_at.timestamp())
        yield from (connected, reconnects, resubscribes, readings, refused, last_data)

    def _sinks(self, s: HealthSnapshot) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            f"{PREFIX}_outbox_depth", "Updates the sink has not delivered.", labels=["sink"]
        )
        age = GaugeMetricFamily(
            f"{PREFIX}_outbox_oldest_pending_age_seconds",
            "Age of the oldest update the sink has not delivered.",
            labels=["sink"],
        )
        delivered = CounterMetricFamily(
            f"{PREFIX}_sink_delivered", "Updates delivered.", labels=["sink"]
        )
        errors = CounterMetricFamily(
            f"{PREFIX}_sink_errors",
            "Failed deliveries by reason: unavailable (retried) or rejected (refused for good).",
            labels=["sink", "reason"],
        )
        writes = SummaryMetricFamily(
            f"{PREFIX}_sink_write_seconds", "Time of the writes the sink accepted.", labels=["sink"]
        )
        rejected = CounterMetricFamily(
            f"{PREFIX}_sink_rejected", "Updates refused for good and skipped.", labels=["sink"]
        )
        for sink in s.sinks:
            name = sink.health.name
            depth.add_metric([name], sink.depth)
            age.add_metric([name], sink.oldest_pending_age_s or 0.0)
            delivered.add_metric([name], sink.health.delivered)
            for reason, count in sink.health.errors_by_reason.items():
                errors.add_metric([name, reason], count)
            writes.add_metric([name], sink.health.writes, sink.health.write_seconds)
            rejected.add_metric([name], sink.health.rejected)
        yield from (depth, age, delivered, errors, writes, rejected)


def edge_registry(snapshot: Callable[[], HealthSnapshot]) -> CollectorRegistry:
    """A registry of its own (one per agent, so several agents can share a process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EdgeMetrics(snapshot))
    return registry
