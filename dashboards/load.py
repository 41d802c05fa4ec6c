"""Load generated dashboard JSON back through the foundation SDK's models.

`load_dashboard` decodes with the SDK's panel plugins (stat, bargauge, timeseries, ...) and our
InfluxQL query type registered; `unknown_to_sdk` re-encodes the decoded model and reports every
path where it differs from the input, i.e. what the SDK's models did not understand.
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import influxql


def load_dashboard(text: str) -> Dashboard:
    """Decode dashboard JSON into the SDK's `Dashboard` model (ValueError when it cannot)."""
    register_default_plugins()
    influxql.register()
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("a dashboard is a JSON object")
    return Dashboard.from_json(data)


def unknown_to_sdk(text: str) -> list[str]:
    """Paths of the JSON that do not survive a decode/encode through the SDK's models."""
    original = json.loads(text)
    again = json.loads(json.dumps(load_dashboard(text), cls=JSONEncoder))
    return _differences(original, again, "$")


def _differences(left: Any, right: Any, path: str) -> list[str]:
    if isinstance(left, dict) and isinstance(right, dict):
        keys = sorted(set(left) | set(right))
        return [d for k in keys for d in _differences(left.get(k), right.get(k), f"{path}.{k}")]
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        return [
            d
            for i, pair in enumerate(zip(left, right, strict=True))
            for d in _differences(*pair, f"{path}[{i}]")
        ]
    return [] if left == right else [path]
