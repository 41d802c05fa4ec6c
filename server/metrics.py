"""Operations endpoints: `GET /healthz` and `GET /metrics` (Prometheus, own registry).

Metrics are read from the live objects at scrape time, so there is one source of truth.
"""

from __future__ import annotations

import collections
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from typing import Any, get_args

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from server.alerts.lifecycle import AlertEngine, RuleSeverity
from server.edge_health import EdgeHealthBook
from server.edge_health_influx import EdgeHealthInflux
from server.events import EventHub
from server.livebus import LiveBusListener
from server.milestone_outputs import MilestoneOutputs
from server.state import LineBoard, LineStatus


class ServerCollector(Collector):
    """Live-bus, line and event-stream metrics of one server."""

    def __init__(self, board: LineBoard, listener: LiveBusListener, hub: EventHub):
        self._board = board
        self._listener = listener
        self._hub = hub

    def collect(self) -> Iterator[Metric]:
        """One sample set per scrape."""
        prefix = "taktline_server"
        yield GaugeMetricFamily(
            f"{prefix}_livebus_connected",
            "1 while the live-bus subscription is up.",
            value=1 if self._listener.connected.is_set() else 0,
        )
        yield CounterMetricFamily(
            f"{prefix}_livebus_connects",
            "Live-bus connections made.",
            value=self._listener.connects,
        )
        yield CounterMetricFamily(
            f"{prefix}_livebus_accepted",
            "Live-bus messages taken into the line state.",
            value=self._board.accepted,
        )
        rejected = CounterMetricFamily(
            f"{prefix}_livebus_rejected", "Live-bus messages ignored, by reason.", labels=["reason"]
        )
        for reason, count in sorted(self._board.rejected.items()):
            rejected.add_metric([reason], count)
        yield rejected
        yield GaugeMetricFamily(
            f"{prefix}_sse_clients", "Open event streams (screens).", value=self._hub.clients
        )
        yield CounterMetricFamily(
            f"{prefix}_sse_dropped",
            "Line events dropped for slow screens (policy: drop oldest).",
            value=self._hub.dropped,
        )
        yield from self._line_metrics()

    def _line_metrics(self) -> Iterator[Metric]:
        labels = ["site", "area", "line"]
        total = GaugeMetricFamily("taktline_line_total", "Lifetime output total.", labels=labels)
        count = GaugeMetricFamily("taktline_line_shift_count", "Units this shift.", labels=labels)
        planned = GaugeMetricFamily(
            "taktline_line_target_so_far", "Units planned up to now.", labels=labels
        )
        rate = GaugeMetricFamily(
            "taktline_line_rate_per_hour", "Units per hour (15 min).", labels=labels
        )
        status = GaugeMetricFamily(
            "taktline_line_status", "1 for the line's current status.", labels=[*labels, "status"]
        )
        for snapshot in self._board.snapshots():
            key = [snapshot.site, snapshot.area, snapshot.line]
            if snapshot.total is not None:
                total.add_metric(key, snapshot.total)
            count.add_metric(key, snapshot.shift_count)
            if snapshot.target_so_far is not None:
                planned.add_metric(key, snapshot.target_so_far)
            rate.add_metric(key, snapshot.rate_per_hour)
            for name in get_args(LineStatus):
                status.add_metric([*key, name], 1 if snapshot.status == name else 0)
        yield from (total, count, planned, rate, status)


class OutputsCollector(Collector):
    """What the server sent on: milestone crossings and edge health samples."""

    def __init__(
        self,
        milestones: MilestoneOutputs,
        edge_health: EdgeHealthBook,
        edge_health_writer: EdgeHealthInflux | None,
    ):
        self._milestones = milestones
        self._edge_health = edge_health
        self._writer = edge_health_writer

    def collect(self) -> Iterator[Metric]:
        """One sample set per scrape."""
        prefix = "taktline_server"
        crossings = CounterMetricFamily(
            f"{prefix}_milestone_crossings_sent",
            "Milestone crossings sent on, by output (live bus, InfluxDB, Grafana annotation).",
            labels=["output"],
        )
        crossings.add_metric(["published"], self._milestones.published)
        crossings.add_metric(["written"], self._milestones.written)
        crossings.add_metric(["annotated"], self._milestones.annotated)
        yield crossings
        yield GaugeMetricFamily(
            f"{prefix}_edges_reporting",
            "Edges with a health sample on the live bus.",
            value=len(self._edge_health.latest),
        )
        yield CounterMetricFamily(
            f"{prefix}_edge_health_accepted",
            "Edge health samples taken from the live bus.",
            value=self._edge_health.accepted,
        )
        rejected = CounterMetricFamily(
            f"{prefix}_edge_health_rejected",
            "Edge health bodies ignored, by reason.",
            labels=["reason"],
        )
        for reason, count in sorted(self._edge_health.rejected.items()):
            rejected.add_metric([reason], count)
        yield rejected
        if self._writer is not None:
            yield CounterMetricFamily(
                f"{prefix}_edge_health_written",
                "Edge health samples InfluxDB took.",
                value=self._writer.written,
            )
            yield CounterMetricFamily(
                f"{prefix}_edge_health_dropped",
                "Edge health samples dropped (queue full, or a failed write).",
                value=self._writer.dropped,
            )


class AlertsCollector(Collector):
    """The alert engine's figures: open alerts, alerts raised, resolved and acknowledged, the
    messages per channel scheme (never the channel's URL: it may hold a secret), and the
    evaluations done and failed (`evaluations()`: done, failed)."""

    def __init__(self, engine: AlertEngine, evaluations: Callable[[], tuple[int, int]]):
        self._engine = engine
        self._evaluations = evaluations

    def collect(self) -> Iterator[Metric]:
        """One sample set per scrape."""
        prefix = "taktline_server_alerts"
        engine = self._engine
        labels = ["rule", "severity"]
        open_now: collections.Counter[RuleSeverity] = collections.Counter(
            (a.key.rule, a.severity) for a in engine.open_alerts()
        )
        counted = (engine.raised, engine.resolved, engine.acknowledged)
        seen = sorted({*open_now}.union(*counted))  # series go to 0 rather than vanish
        gauge = GaugeMetricFamily(
            f"{prefix}_open", "Open alerts (firing, notified, acknowledged).", labels=labels
        )
        for key in seen:
            gauge.add_metric(list(key), open_now[key])
        yield gauge
        for name, counts, text in (
            ("raised", engine.raised, "Alerts raised."),
            ("resolved", engine.resolved, "Alerts resolved."),
            ("acknowledged", engine.acknowledged, "Alerts acknowledged (link or API)."),
        ):
            counter = CounterMetricFamily(f"{prefix}_{name}", text, labels=labels)
            for key in seen:
                counter.add_metric(list(key), counts[key])
            yield counter
        yield GaugeMetricFamily(
            f"{prefix}_running",
            "1 when this replica runs the alerts (holds the store's alert lease), else 0.",
            value=int(engine.leading),
        )
        yield from self._channel_metrics()
        done, failed = self._evaluations()
        yield CounterMetricFamily(f"{prefix}_evaluations", "Evaluations of the alert rules.", done)
        yield CounterMetricFamily(
            f"{prefix}_evaluation_errors",
            "Evaluations of the alert rules that raised an error (logged; retried next period).",
            value=failed,
        )
        yield CounterMetricFamily(
            f"{prefix}_store_failures",
            "Writes of alert state to the state store that failed (kept in memory, retried).",
            value=engine.store_failures,
        )

    def _channel_metrics(self) -> Iterator[Metric]:
        sent: collections.Counter[tuple[str, str]] = collections.Counter()
        failing: collections.Counter[str] = collections.Counter()
        for channel, stats in self._engine.notifier.stats().items():
            scheme = urllib.parse.urlsplit(channel.redacted).scheme
            sent[(scheme, "delivered")] += stats.delivered
            sent[(scheme, "failed")] += stats.failed
            sent[(scheme, "dropped")] += stats.dropped
            failing[scheme] += stats.failing
        messages = CounterMetricFamily(
            "taktline_server_alert_messages",
            "Alert messages by channel scheme and result: delivered, failed (after the retries),"
            " dropped (queue full).",
            labels=["scheme", "result"],
        )
        for key, count in sorted(sent.items()):
            messages.add_metric(list(key), count)
        yield messages
        channels = GaugeMetricFamily(
            "taktline_server_alert_channels_failing",
            "Channels whose last attempt failed, by scheme.",
            labels=["scheme"],
        )
        for scheme, count in sorted(failing.items()):
            channels.add_metric([scheme], count)
        yield channels


def router(
    board: LineBoard,
    listener: LiveBusListener,
    hub: EventHub,
    extra: Sequence[Collector] = (),
) -> APIRouter:
    """`GET /healthz` and `GET /metrics` (with the `extra` collectors)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(board, listener, hub))
    for collector in extra:
        registry.register(collector)
    routes = APIRouter(tags=["operations"])

    @routes.get("/healthz", summary="Liveness, with the live-bus connection")
    async def healthz() -> dict[str, Any]:
        connected = listener.connected.is_set()
        return {
            "status": "ok" if connected else "degraded",
            "live_bus": {"broker": listener.where, "connected": connected},
            "lines": len(board.line_ids()),
        }

    @routes.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return routes
