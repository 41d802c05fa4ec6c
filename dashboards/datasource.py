"""The Grafana datasource every generated panel queries: InfluxDB, in InfluxQL, by uid."""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import DataSourceRef

DATASOURCE_TYPE = "influxdb"
"""Grafana's plugin id of the InfluxDB datasource (InfluxQL for 1.x, 2.x with DBRP, 3.x)."""

DATASOURCE_UID = "taktline-influxdb"
"""uid of the InfluxDB datasource the dashboards reference. Provisioning (deploy/grafana/)
creates the datasource with this uid, so the dashboards resolve it on any Grafana instance."""

GRAFANA_ANNOTATIONS = DataSourceRef(type_val="grafana", uid="-- Grafana --")
"""Grafana's built-in annotation store, where milestone annotations are written."""


def influxdb(uid: str = DATASOURCE_UID) -> DataSourceRef:
    """A reference to the InfluxDB datasource with this uid."""
    return DataSourceRef(type_val=DATASOURCE_TYPE, uid=uid)
