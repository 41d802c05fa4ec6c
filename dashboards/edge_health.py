"""The Edge health dashboard: source connectivity, outbox depth and age, write latency and
errors of every edge, from the samples the server writes (measurements `edge_source`,
`edge_outbox`, `edge_sink`; docs/contracts.md).

The `edge` variable lists the edges that wrote samples (`SHOW TAG VALUES`); every query keeps
the chosen ones with `"edge" =~ /^${edge}$/` (Grafana joins several values into one regex).
Counts since the edge started (readings, errors, ...) are shown as rates per minute with
`non_negative_derivative`, so an edge restart (its counts start from 0 again) shows no dip.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import statetimeline, table, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from dashboards.datasource import influxdb
from dashboards.milestones import plant_zone
from dashboards.panels import (
    BAD,
    INFO,
    OK,
    TAG,
    legend,
    queries,
    query,
    range_mapping,
    thresholds,
    tooltip,
)
from taktline.model import Plant

UID = "taktline-edge-health"
VARIABLE = "edge"
SOURCE, OUTBOX, SINK = "edge_source", "edge_outbox", "edge_sink"
MIN_INTERVAL = "30s"
"""Shortest time bucket: three samples at the edge's default health period of 10 s, so a
bucket is never empty while the edge reports."""


def edge_variable() -> db.QueryVariable:
    """The `edge` variable: every edge that wrote a sample, several at once, All by default."""
    return (
        db.QueryVariable(VARIABLE)
        .label("Edge")
        .datasource(influxdb())
        .query(f'SHOW TAG VALUES FROM "{OUTBOX}" WITH KEY = "edge"')
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .current(model.VariableOption(text="All", value="$__all", selected=True))
    )


def chosen_edges() -> str:
    """The condition keeping the edges the variable chose, within the time range."""
    return f'$timeFilter AND "edge" =~ /^${{{VARIABLE}}}$/'


def per_bucket(aggregate: str, measurement: str, tags: tuple[str, ...]) -> str:
    """`aggregate` (e.g. `max("depth")`) per `$__interval` and per series of `tags`."""
    name = aggregate.split('"')[1]
    group = ", ".join(f'"{tag}"' for tag in tags)
    return (
        f'SELECT {aggregate} AS "{name}" FROM "{measurement}" WHERE {chosen_edges()}'
        f" GROUP BY time($__interval), {group}"
    )


def per_minute(field: str, measurement: str, tags: tuple[str, ...]) -> str:
    """How fast a count since the edge started grows, per minute (restarts show no dip)."""
    return per_bucket(f'non_negative_derivative(last("{field}"), 1m)', measurement, tags)


def newest(fields: tuple[str, ...], measurement: str, tags: tuple[str, ...]) -> str:
    """The newest value of each field in the time range, one row per series of `tags`."""
    selected = ", ".join(f'last("{field}") AS "{field}"' for field in fields)
    group = ", ".join(f'"{tag}"' for tag in tags)
    return f'SELECT {selected} FROM "{measurement}" WHERE {chosen_edges()} GROUP BY {group}'


EDGE, EDGE_SOURCE, EDGE_SINK = ("edge",), ("edge", "source"), ("edge", "sink")
BY_EDGE, BY_SOURCE, BY_SINK = "$tag_edge", "$tag_edge / $tag_source", "$tag_edge / $tag_sink"


def edge_health_dashboard(plant: Plant) -> db.Dashboard:
    """Sources, outbox and sinks of the chosen edges."""
    return (
        db.Dashboard(f"{plant.name}: edge health")
        .uid(UID)
        .tags([TAG, "edge"])
        .time("now-6h", "now")
        .refresh("1m")
        .timezone(plant_zone(plant))
        .with_variable(edge_variable())
        .with_row(db.Row("Sources"))
        .with_panel(
            connected("Source connected", SOURCE, EDGE_SOURCE, BY_SOURCE).description(
                "Each source (PLC, test stand, MQTT device) of each edge: down when it was"
                " disconnected at any sample of the bucket; empty when no sample came."
            )
        )
        .with_panel(
            rows(
                "Sources now",
                newest(("connected", "readings", "reconnects", "rejected"), SOURCE, EDGE_SOURCE),
            ).description(
                "The newest sample of each source: connected 1 or 0, and counts since its edge"
                " started."
            )
        )
        .with_panel(
            graph(
                "Readings per minute",
                [(per_minute("readings", SOURCE, EDGE_SOURCE), BY_SOURCE)],
            )
            .unit("none")
            .description("Readings the edge took from each source.")
        )
        .with_panel(
            graph(
                "Source errors per minute",
                [
                    (per_minute("rejected", SOURCE, EDGE_SOURCE), f"{BY_SOURCE} rejected"),
                    (per_minute("reconnects", SOURCE, EDGE_SOURCE), f"{BY_SOURCE} reconnects"),
                ],
            )
            .unit("none")
            .description("Bad input the collectors refused, and reconnects to the sources.")
        )
        .with_row(db.Row("Outbox"))
        .with_panel(
            graph("Outbox depth", [(per_bucket('max("depth")', OUTBOX, EDGE), BY_EDGE)])
            .unit("none")
            .description(
                "Updates the slowest sink has not delivered yet. It grows while InfluxDB or the"
                " live bus is unreachable and shrinks when they take updates again."
            )
            .span(8)
        )
        .with_panel(
            graph(
                "Oldest undelivered update",
                [(per_bucket('max("oldest_age_s")', OUTBOX, EDGE), BY_EDGE)],
            )
            .unit("s")
            .description("How long the oldest update some sink has not delivered has waited.")
            .span(8)
        )
        .with_panel(
            graph("Dropped per minute", [(per_minute("dropped", OUTBOX, EDGE), BY_EDGE)])
            .unit("none")
            .description(
                "Updates dropped undelivered to make room (only with `when_full: drop_oldest`)."
            )
            .span(8)
        )
        .with_row(db.Row("Sinks"))
        .with_panel(
            connected("Sink connected", SINK, EDGE_SINK, BY_SINK)
            .description("InfluxDB and the live bus, as each edge sees them.")
            .span(12)
        )
        .with_panel(
            graph("Write latency", [(per_bucket('mean("write_s")', SINK, EDGE_SINK), BY_SINK)])
            .unit("s")
            .description(
                "Mean time of the writes each sink's destination accepted. InfluxDB: one"
                " request. Live bus: until the broker acknowledged the batch, with the pause of"
                " its rate limit (at least 0.1 s at the default 10 messages/s per counter)."
            )
        )
        .with_panel(
            graph("Sink backlog", [(per_bucket('max("depth")', SINK, EDGE_SINK), BY_SINK)])
            .unit("none")
            .description("Updates each sink has not delivered yet.")
        )
        .with_panel(
            graph(
                "Sink errors per minute",
                [
                    (per_minute("errors", SINK, EDGE_SINK), f"{BY_SINK} errors"),
                    (per_minute("rejected", SINK, EDGE_SINK), f"{BY_SINK} rejected"),
                ],
            )
            .unit("none")
            .description(
                "Failed deliveries (retried), and updates refused for good (parked in the"
                " edge's dead letters)."
            )
        )
    )


def graph(title: str, items: list[tuple[str, str | None]]) -> timeseries.Panel:
    """Lines over time, one per series."""
    return (
        timeseries.Panel()
        .legend(legend())
        .tooltip(tooltip())
        .title(title)
        .datasource(influxdb())
        .targets(queries(items))
        .interval(MIN_INTERVAL)
        .line_width(2)
        .fill_opacity(10)
        .min(0)
        .thresholds(thresholds((None, INFO)))
        .span(12)
        .height(8)
    )


def connected(
    title: str, measurement: str, tags: tuple[str, ...], alias: str
) -> statetimeline.Panel:
    """Connected or down over time, one row per series."""
    return (
        statetimeline.Panel()
        .legend(legend())
        .tooltip(tooltip())
        .title(title)
        .datasource(influxdb())
        .with_target(query(per_bucket('min("connected")', measurement, tags), alias))
        .interval(MIN_INTERVAL)
        .line_width(0)
        .fill_opacity(80)
        .mappings([range_mapping(None, 0, "down", BAD), range_mapping(1, None, "connected", OK)])
        .show_value(common.VisibilityMode.NEVER)
        .merge_values(True)
        .span(16)
        .height(8)
    )


def rows(title: str, text: str) -> table.Panel:
    """A table of the query's rows."""
    return (
        table.Panel()
        .show_header(True)
        .title(title)
        .datasource(influxdb())
        .with_target(query(text).table())
        .span(8)
        .height(8)
    )
