"""Small pieces every dashboard uses: thresholds, query lists, the milestone annotation."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import count

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from dashboards.datasource import GRAFANA_ANNOTATIONS
from dashboards.influxql import InfluxQL

TAG = "taktline"
"""Tag of every generated dashboard (dashboard links list them by it)."""
MILESTONE_TAG = "milestone"
"""Tag of the Grafana annotations the server writes when a milestone is crossed."""

OK, WARN, BAD, INFO = "green", "orange", "red", "blue"
"""Threshold colours: on plan, near, below; neutral information."""


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    """Absolute thresholds: (None, base colour), then (value, colour) from that value up."""
    return (
        db.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


def attainment_thresholds() -> db.ThresholdsConfig:
    """Percent of plan: red below 95, orange below 100, green from 100."""
    return thresholds((None, BAD), (95, WARN), (100, OK))


def ref_ids() -> Iterator[str]:
    """A, B, ..., Z, A1, B1, ...: the refIds of a panel's queries."""
    for round_ in count():
        for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
            yield letter if round_ == 0 else f"{letter}{round_}"


def query(text: str, alias: str | None = None, ref: str = "A") -> InfluxQL:
    """One InfluxQL target."""
    target = InfluxQL(text).ref_id(ref)
    return target.alias(alias) if alias is not None else target


def queries(items: Iterable[tuple[str, str | None]]) -> list[Builder[Dataquery]]:
    """InfluxQL targets from (query, alias or None), with refIds in order."""
    return [query(text, alias, ref) for ref, (text, alias) in zip(ref_ids(), items, strict=False)]


def milestone_annotation() -> db.AnnotationQuery:
    """Milestones as annotations: Grafana's own annotations tagged `milestone`."""
    return (
        db.AnnotationQuery()
        .name("Milestones")
        .datasource(GRAFANA_ANNOTATIONS)
        .enable(True)
        .icon_color("#F2CC0C")
        .target(db.AnnotationTarget().type("tags").tags([MILESTONE_TAG]).limit(100))
    )


def range_mapping(low: float | None, high: float | None, text: str, color: str) -> model.RangeMap:
    """Show values in [low, high] as `text` in `color` (None: unbounded)."""
    options = model.DashboardRangeMapOptions(
        from_val=low, to=high, result=model.ValueMappingResult(text=text, color=color)
    )
    return model.RangeMap(options=options)


def legend() -> cb.VizLegendOptions:
    """A legend below the graph, as a list."""
    return (
        cb.VizLegendOptions()
        .show_legend(True)
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
    )


def tooltip() -> cb.VizTooltipOptions:
    """A tooltip with every series at the cursor."""
    return cb.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.NONE)
