"""Generate every dashboard of a plant and write one JSON file per dashboard."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards.edge_health import edge_health_dashboard
from dashboards.line_detail import line_detail_dashboard
from dashboards.milestones import milestones_dashboard
from dashboards.overview import overview_dashboard
from taktline.model import Plant

GENERATED = Path(__file__).resolve().parent / "generated"
"""Where the committed JSON for examples/plant.yaml lives."""

DASHBOARDS: dict[str, Callable[[Plant], db.Dashboard]] = {
    "plant-overview.json": overview_dashboard,
    "line-detail.json": line_detail_dashboard,
    "milestones.json": milestones_dashboard,
    "edge-health.json": edge_health_dashboard,
}
"""File name -> generator."""


def build_dashboards(plant: Plant) -> dict[str, Dashboard]:
    """Every dashboard of the plant, by file name."""
    return {name: _numbered(make(plant).build()) for name, make in DASHBOARDS.items()}


def _numbered(dashboard: Dashboard) -> Dashboard:
    """Panel ids 1, 2, ... in order (Grafana wants them unique within a dashboard)."""
    for number, panel in enumerate(dashboard.panels or [], start=1):
        panel.id_val = number
    return dashboard


def render(dashboard: Dashboard) -> str:
    """The dashboard as Grafana's JSON model: stable key order, two-space indent, final newline."""
    text = json.dumps(dashboard, cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False)
    return text + "\n"


def write_dashboards(plant: Plant, out: Path) -> list[Path]:
    """Write every dashboard as `out/<name>.json`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, dashboard in build_dashboards(plant).items():
        file = out / name
        file.write_text(render(dashboard), encoding="utf-8")
        written.append(file)
    return written
