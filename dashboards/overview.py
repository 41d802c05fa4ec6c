"""The Plant overview dashboard: lifetime output per site, milestone progress, units per line
today, and units per hour against each line's target."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, stat, timeseries
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from dashboards import plan
from dashboards import queries as q
from dashboards.datasource import influxdb
from dashboards.line_detail import UID as LINE_UID
from dashboards.milestones import plant_zone, progress_panels
from dashboards.panels import (
    BAD,
    INFO,
    OK,
    TAG,
    legend,
    milestone_annotation,
    queries,
    query,
    thresholds,
    tooltip,
)
from taktline.model import PlacedLine, Plant, Site

UID = "taktline-overview"


def overview_dashboard(plant: Plant) -> db.Dashboard:
    """The plant on one screen."""
    lines = list(plant.lines())
    board = (
        db.Dashboard(f"{plant.name}: overview")
        .uid(UID)
        .tags([TAG, "overview"])
        .time("now/d", "now")
        .refresh("1m")
        .timezone(plant_zone(plant))
        .annotation(milestone_annotation())
        .link(
            db.DashboardLink("taktline")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .keep_time(True)
        )
        .with_row(db.Row("Lifetime"))
    )
    for site in plant.sites:
        board = board.with_panel(site_total(site, [p for p in lines if p.site.id == site.id]))
    if plant.milestones:
        board = board.with_row(db.Row("Next milestones"))
        for milestone in plant.milestones:
            for panel in progress_panels(milestone):
                board = board.with_panel(panel)
    board = board.with_row(db.Row("Today")).with_panel(units_today(lines))
    board = board.with_row(db.Row("Units per hour against target"))
    for placed in lines:
        board = board.with_panel(per_hour(plant, placed))
    return board


def site_total(site: Site, lines: list[PlacedLine]) -> stat.Panel:
    """The site's lifetime output: the lines' output counters summed, as a big number."""
    where = q.any_of([q.counter_filter(p.output_path()) for p in lines])
    return (
        stat.Panel()
        .title(f"{site.name}: lifetime output")
        .description("Sum of the newest lifetime `total` of every line's output counter.")
        .datasource(influxdb())
        .with_target(query(q.lifetime_total(where), "lifetime output"))
        .unit("locale")
        .decimals(0)
        .thresholds(thresholds((None, INFO)))
        .graph_mode(common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.VALUE)
        .text_mode(common.BigValueTextMode.VALUE)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(24)
        .height(7)
    )


def units_today(lines: list[PlacedLine]) -> bargauge.Panel:
    """Units of each line since local midnight."""
    items = [(q.units(q.counter_filter(p.output_path())), p.line.name) for p in lines]
    return (
        bargauge.Panel()
        .title("Units per line today")
        .datasource(influxdb())
        .targets(queries(items))
        .time_from("now/d")
        .unit("locale")
        .decimals(0)
        .min(0)
        .thresholds(thresholds((None, INFO)))
        .display_mode(common.BarGaugeDisplayMode.BASIC)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(cb.ReduceDataOptions().calcs(["sum"]).values(False))
        .span(24)
        .height(2 + 2 * len(lines))
    )


def per_hour(plant: Plant, placed: PlacedLine) -> timeseries.Panel:
    """Bars of units per hour, red below the line's hourly target, the target dashed."""
    calendar = plant.shift_calendars[placed.line.shift_calendar]
    target = round(plan.planned_per_hour(placed.line.target, calendar), 1)
    where = q.counter_filter(placed.output_path())
    return (
        timeseries.Panel()
        .legend(legend())
        .tooltip(tooltip())
        .title(f"{placed.line.name}: units per hour")
        .description(f"Target {target:g} units per productive hour (dashed).")
        .datasource(influxdb())
        .with_target(
            query(q.units_per_bucket(where, "1h", zone=calendar.timezone), placed.line.name)
        )
        .time_from("now-24h")
        .unit("none")
        .decimals(0)
        .min(0)
        .thresholds(thresholds((None, BAD), (target, OK)))
        .color_scheme(db.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
        .thresholds_style(
            cb.GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED)
        )
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .data_links(
            [
                db.DashboardLink("Line detail")
                .url(f"/d/{LINE_UID}?var-line={placed.line.id}")
                .keep_time(True)
            ]
        )
        .span(8)
        .height(8)
    )
