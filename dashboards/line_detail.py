"""The Line detail dashboard: one line at a time, chosen by the `line` variable.

Every panel holds one query per line, each guarded by `queries.line_is`, so only the chosen
line's query returns data while each keeps its own output counter, shift buckets and target.
"""

from __future__ import annotations

from collections.abc import Iterable

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat, statetimeline, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from dashboards import plan
from dashboards import queries as q
from dashboards.datasource import influxdb
from dashboards.panels import (
    BAD,
    INFO,
    OK,
    TAG,
    attainment_thresholds,
    legend,
    milestone_annotation,
    queries,
    range_mapping,
    thresholds,
    tooltip,
)
from taktline.model import CounterPath, PlacedLine, Plant, Station

UID = "taktline-line"
VARIABLE = "line"
EOL_COUNTERS = ("tested", "passed")
"""A station with these counters is an end-of-line test stand: its yield is passed / tested."""


def line_variable(lines: list[PlacedLine]) -> db.CustomVariable:
    """The `line` variable: one option per line of the plant, its id as value."""
    options = [
        model.VariableOption(text=p.line.name, value=p.line.id, selected=index == 0)
        for index, p in enumerate(lines)
    ]
    return (
        db.CustomVariable(VARIABLE)
        .label("Line")
        .values(",".join(f"{p.line.name} : {p.line.id}" for p in lines))
        .options(options)
        .current(
            model.VariableOption(text=lines[0].line.name, value=lines[0].line.id, selected=True)
        )
        .multi(False)
        .include_all(False)
    )


def eol_station(placed: PlacedLine) -> Station | None:
    """The line's end-of-line test stand, if it has one."""
    for station in placed.line.stations:
        if set(EOL_COUNTERS) <= {c.name for c in station.counters}:
            return station
    return None


def line_detail_dashboard(plant: Plant) -> db.Dashboard:
    """Count per shift against plan, rate, stops and EOL yield of the selected line."""
    lines = list(plant.lines())
    zone = plant.shift_calendars[lines[0].line.shift_calendar].timezone
    board = (
        db.Dashboard(f"{plant.name}: line detail")
        .uid(UID)
        .tags([TAG, "line"])
        .time("now-24h", "now")
        .refresh("1m")
        .timezone(zone)
        .with_variable(line_variable(lines))
        .annotation(milestone_annotation())
        .with_row(db.Row("Output against plan"))
        .with_panel(per_shift(plant, lines))
        .with_panel(attainment(plant, lines))
        .with_row(db.Row("Rate and stops"))
        .with_panel(rate(lines))
        .with_panel(stops(plant, lines))
        .with_panel(stopped_time(plant, lines))
    )
    eol = [(p, s) for p in lines if (s := eol_station(p)) is not None]
    if eol:
        board = board.with_row(db.Row("End-of-line yield"))
        for panel in yield_panels(eol):
            board = board.with_panel(panel)
    return board


def _where(placed: PlacedLine, path: CounterPath | None = None) -> str:
    counter = q.counter_filter(path or placed.output_path())
    return f"{q.line_is(VARIABLE)} AND {counter}"


def per_shift(plant: Plant, lines: list[PlacedLine]) -> timeseries.Panel:
    """Units per shift (per day where the shifts do not tile the day)."""
    items = []
    for placed in lines:
        buckets = plan.buckets(plant.shift_calendars[placed.line.shift_calendar])
        text = q.units_per_bucket(_where(placed), buckets.group_by, zone=buckets.zone)
        items.append((text, placed.line.name))
    return _bars("Units per shift", items).unit("locale").thresholds(thresholds((None, INFO)))


def attainment(plant: Plant, lines: list[PlacedLine]) -> timeseries.Panel:
    """Units per shift as a percentage of the shift's plan."""
    items = []
    for placed in lines:
        calendar = plant.shift_calendars[placed.line.shift_calendar]
        buckets = plan.buckets(calendar)
        planned = plan.planned_per_bucket(placed.line.target, calendar)
        scale = f" * 100 / {planned:g}"
        items.append(
            (q.units_per_bucket(_where(placed), buckets.group_by, scale, buckets.zone), "% of plan")
        )
    return (
        _bars("Units per shift, % of plan", items)
        .description("Planned: productive shift time / takt, or units per shift. Dashed: 100 %.")
        .unit("percent")
        .thresholds(attainment_thresholds())
        .color_scheme(db.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
        .thresholds_style(
            cb.GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED)
        )
    )


def _bars(title: str, items: Iterable[tuple[str, str | None]]) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .legend(legend())
        .tooltip(tooltip())
        .title(title)
        .datasource(influxdb())
        .targets(queries(items))
        .time_from("now-7d")
        .decimals(0)
        .min(0)
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .span(12)
        .height(8)
    )


def rate(lines: list[PlacedLine]) -> timeseries.Panel:
    """Units per hour, averaged over the panel's interval (5 minutes at least)."""
    scale = " * 3600000 / $__interval_ms"
    items: list[tuple[str, str | None]] = [
        (q.units_per_bucket(_where(p), "$__interval", scale), "units/h") for p in lines
    ]
    return (
        timeseries.Panel()
        .legend(legend())
        .tooltip(tooltip())
        .title("Rate")
        .line_width(2)
        .fill_opacity(10)
        .datasource(influxdb())
        .targets(queries(items))
        .interval("5m")
        .unit("none")
        .decimals(0)
        .min(0)
        .span(10)
        .height(8)
    )


def stops(plant: Plant, lines: list[PlacedLine]) -> statetimeline.Panel:
    """Running or stopped: a window of a few takts without a unit is a stop."""
    items: list[tuple[str, str | None]] = []
    for placed in lines:
        window = _window(plant, placed)
        items.append((q.units_per_bucket(_where(placed), plan.duration(window)), "state"))
    return (
        statetimeline.Panel()
        .legend(legend())
        .tooltip(tooltip())
        .title("Running / stopped")
        .line_width(0)
        .fill_opacity(80)
        .description(
            f"Stopped: no unit for {plan.STOP_TAKTS} takts (in whole minutes); planned breaks"
            " count as stops."
        )
        .datasource(influxdb())
        .targets(queries(items))
        .mappings([range_mapping(None, 0, "stopped", BAD), range_mapping(1, None, "running", OK)])
        .show_value(common.VisibilityMode.NEVER)
        .merge_values(True)
        .span(10)
        .height(8)
    )


def stopped_time(plant: Plant, lines: list[PlacedLine]) -> stat.Panel:
    """Total stopped time in the range."""
    items: list[tuple[str, str | None]] = [
        (q.stopped_seconds(_where(p), _window(plant, p)), "stopped") for p in lines
    ]
    return (
        stat.Panel()
        .title("Stopped time")
        .datasource(influxdb())
        .targets(queries(items))
        .unit("s")
        .thresholds(thresholds((None, INFO)))
        .no_value("no units in range")
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(cb.ReduceDataOptions().calcs(["sum"]).values(False))
        .span(4)
        .height(8)
    )


def _window(plant: Plant, placed: PlacedLine) -> int:
    calendar = plant.shift_calendars[placed.line.shift_calendar]
    return plan.stop_window_seconds(placed.line.target, calendar)


def yield_panels(
    eol: list[tuple[PlacedLine, Station]],
) -> list[cogbuilder.Builder[model.Panel]]:
    """First-pass yield (passed / tested) per hour and over the range."""
    hourly: list[tuple[str, str | None]] = []
    overall: list[tuple[str, str | None]] = []
    for placed, station in eol:
        for name in EOL_COUNTERS:
            path = CounterPath(placed.site.id, placed.area.id, placed.line.id, station.id, name)
            hourly.append((q.units_per_bucket(_where(placed, path), "1h", name=name), name))
            overall.append((q.units(_where(placed, path), name=name), name))
    trend = (
        timeseries.Panel()
        .legend(legend())
        .tooltip(tooltip())
        .title("First-pass yield per hour")
        .line_width(2)
        .show_points(common.VisibilityMode.ALWAYS)
        .datasource(influxdb())
        .targets(queries(hourly))
        .with_transformation(_join())
        .with_transformation(_ratio())
        .unit("percentunit")
        .min(0)
        .max(1)
        .thresholds(thresholds((None, BAD), (0.95, OK)))
        .color_scheme(db.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
        .no_value("no EOL test counters on this line")
        .span(16)
        .height(8)
    )
    total = (
        stat.Panel()
        .title("First-pass yield")
        .datasource(influxdb())
        .targets(queries(overall))
        .with_transformation(_join())
        .with_transformation(_ratio())
        .unit("percentunit")
        .decimals(2)
        .thresholds(thresholds((None, BAD), (0.95, OK)))
        .no_value("no EOL test counters on this line")
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(8)
        .height(8)
    )
    return [trend, total]


def _join() -> model.DataTransformerConfig:
    return model.DataTransformerConfig(
        id_val="joinByField", options={"byField": "Time", "mode": "outer"}
    )


def _ratio() -> model.DataTransformerConfig:
    binary = {"left": "passed", "operator": "/", "right": "tested"}
    options = {"mode": "binary", "binary": binary, "alias": "yield", "replaceFields": True}
    return model.DataTransformerConfig(id_val="calculateField", options=options)
