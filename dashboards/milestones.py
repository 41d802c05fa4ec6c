"""The Milestones dashboard, and the milestone progress panels the overview shows too."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from dashboards import queries as q
from dashboards.datasource import influxdb
from dashboards.panels import (
    INFO,
    OK,
    TAG,
    WARN,
    legend,
    milestone_annotation,
    queries,
    query,
    range_mapping,
    thresholds,
    tooltip,
)
from taktline.model import Milestone, Plant

UID = "taktline-milestones"
SCOPE_LEVELS = ("site", "area", "line", "station")


def milestone_filter(milestone: Milestone) -> str:
    """The counters a milestone sums: its counter at every station below its scope."""
    tags = dict(zip(SCOPE_LEVELS, milestone.scope_parts, strict=False))
    return q.tags_equal(tags | {"counter": milestone.counter})


def title(milestone: Milestone) -> str:
    """`30,000,000 vehicles`, or from the numbers: `Every 1,000,000 passed`."""
    if milestone.name:
        return milestone.name
    if milestone.threshold is not None:
        return f"{milestone.threshold:,} {milestone.counter}"
    return f"Every {milestone.every:,} {milestone.counter}"


def progress_panels(milestone: Milestone) -> list[cogbuilder.Builder[model.Panel]]:
    """A bar towards the milestone (a threshold, or the next step) and the units still to go."""
    where = milestone_filter(milestone)
    scope = f"sum of `{milestone.counter}` over {milestone.scope}"
    if milestone.threshold is not None:
        goal = milestone.threshold
        progress = q.lifetime_total(where)
        to_go = q.lifetime_expression(f'{goal} - sum("total")', where)
        bar_title = f"{title(milestone)}: progress"
    else:
        assert milestone.every is not None
        goal = milestone.every
        progress = q.lifetime_expression(f'sum("total") % {goal}', where)
        to_go = q.lifetime_expression(f'{goal} - sum("total") % {goal}', where)
        bar_title = f"{title(milestone)}: progress to the next step"
    bar = (
        bargauge.Panel()
        .title(bar_title)
        .description(f"Lifetime {scope}, towards {goal:,}.")
        .datasource(influxdb())
        .with_target(query(progress, "units"))
        .unit("locale")
        .decimals(0)
        .min(0)
        .max(goal)
        .thresholds(thresholds((None, INFO), (goal, OK)))
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(16)
        .height(5)
    )
    remaining = (
        stat.Panel()
        .title(f"{title(milestone)}: to go")
        .description(f"Units until {goal:,} ({scope}).")
        .datasource(influxdb())
        .with_target(query(to_go, "to go"))
        .unit("locale")
        .decimals(0)
        .thresholds(thresholds((None, WARN), (max(1, goal // 100), INFO)))
        .mappings([range_mapping(None, 0, "reached", OK)])
        .graph_mode(common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.VALUE)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(8)
        .height(5)
    )
    return [bar, remaining]


def milestones_dashboard(plant: Plant) -> db.Dashboard:
    """Crossed milestones as a table, progress to the coming ones, and the totals over time
    with every crossing marked (Grafana annotations tagged `milestone`)."""
    board = (
        db.Dashboard(f"{plant.name}: milestones")
        .uid(UID)
        .tags([TAG, "milestones"])
        .time("now-1y", "now")
        .refresh("1m")
        .timezone(plant_zone(plant))
        .annotation(milestone_annotation())
        .with_row(db.Row("Crossed"))
        .with_panel(
            table.Panel()
            .show_header(True)
            .title("Milestones crossed")
            .description(
                "The `milestone` measurement: one row per crossing, at the time of the"
                " update that crossed it."
            )
            .datasource(influxdb())
            .with_target(query(q.milestone_rows()).table())
            .span(24)
            .height(8)
        )
    )
    if plant.milestones:
        board = board.with_row(db.Row("Coming"))
        for milestone in plant.milestones:
            for panel in progress_panels(milestone):
                board = board.with_panel(panel)
        board = board.with_row(db.Row("Totals")).with_panel(totals_over_time(plant))
    return board


def totals_over_time(plant: Plant) -> timeseries.Panel:
    """The counters of each distinct milestone sum (scope and counter) over time, stacked."""
    sums = {(m.scope, m.counter): milestone_filter(m) for m in plant.milestones}
    items = [
        (q.lifetime_per_counter(where), f"{counter} over {scope}: $tag_line/$tag_station")
        for (scope, counter), where in sums.items()
    ]
    return (
        timeseries.Panel()
        .legend(legend())
        .tooltip(tooltip())
        .title("Lifetime totals")
        .line_width(2)
        .line_interpolation(common.LineInterpolation.STEP_AFTER)
        .fill_opacity(20)
        .stacking(cb.StackingConfig().mode(common.StackingMode.NORMAL).group("A"))
        .description(
            "The counters the milestones sum, stacked: the top is the sum. The markers are the"
            " crossings."
        )
        .datasource(influxdb())
        .targets(queries(items))
        .unit("locale")
        .decimals(0)
        .interval("1m")
        .span(24)
        .height(9)
    )


def plant_zone(plant: Plant) -> str:
    """The dashboards' time zone: that of the first line's shift calendar ("today" is local)."""
    first = next(plant.lines())
    return plant.shift_calendars[first.line.shift_calendar].timezone
