"""An InfluxQL query target for the foundation SDK, which ships no InfluxDB query type.

`InfluxQLQuery` is a `Dataquery` variant (raw InfluxQL, as Grafana's InfluxDB datasource stores
a query written in its code editor) with a builder, `InfluxQL`. `register()` tells the SDK's
runtime to decode targets of datasource type `influxdb` into it, so a generated dashboard can
be loaded back through the SDK's models; decoding rejects keys it does not know.
"""

from __future__ import annotations

from typing import Any, Literal, Self, get_args

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from dashboards.datasource import DATASOURCE_TYPE, influxdb

ResultFormat = Literal["time_series", "table"]
_KEYS = {"refId", "datasource", "query", "rawQuery", "resultFormat", "alias"}


class InfluxQLQuery(cogvariants.Dataquery):
    """One raw InfluxQL query of a panel."""

    def __init__(
        self,
        ref_id: str = "",
        query: str = "",
        result_format: ResultFormat = "time_series",
        alias: str | None = None,
        datasource: DataSourceRef | None = None,
    ) -> None:
        self.ref_id = ref_id
        self.query = query
        self.result_format: ResultFormat = result_format
        self.alias = alias
        self.datasource = datasource if datasource is not None else influxdb()

    def to_json(self) -> dict[str, object]:
        """The target as Grafana stores it."""
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "datasource": self.datasource,
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            payload["alias"] = self.alias
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Decode a stored target; ValueError for a builder-mode query or unknown keys."""
        unknown = set(data) - _KEYS
        if unknown:
            raise ValueError(f"unknown InfluxQL target keys: {sorted(unknown)}")
        if data.get("rawQuery") is not True or not data.get("query"):
            raise ValueError("an InfluxQL target here is a raw query with a non-empty 'query'")
        result_format = data.get("resultFormat", "time_series")
        if result_format not in get_args(ResultFormat):
            raise ValueError(f"unknown resultFormat {result_format!r}")
        return cls(
            ref_id=data.get("refId", ""),
            query=data["query"],
            result_format=result_format,
            alias=data.get("alias"),
            datasource=DataSourceRef.from_json(data.get("datasource", {})),
        )


class InfluxQL(cogbuilder.Builder[InfluxQLQuery]):
    """Builder of an `InfluxQLQuery`: `InfluxQL(query).ref_id("A").alias("fa1")`."""

    def __init__(self, query: str) -> None:
        self._internal = InfluxQLQuery(query=query)

    def build(self) -> InfluxQLQuery:
        """The query."""
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        """The query's id within its panel (A, B, ...)."""
        self._internal.ref_id = ref_id
        return self

    def alias(self, alias: str) -> Self:
        """The series name Grafana shows."""
        self._internal.alias = alias
        return self

    def table(self) -> Self:
        """Return rows (`resultFormat: table`) instead of time series."""
        self._internal.result_format = "table"
        return self

    def datasource(self, datasource: DataSourceRef) -> Self:
        """Query another InfluxDB datasource than the default uid."""
        self._internal.datasource = datasource
        return self


def register() -> None:
    """Decode targets of datasource type `influxdb` as `InfluxQLQuery` (idempotent)."""
    cogruntime.register_dataquery_variant(
        cogruntime.DataqueryConfig(
            identifier=DATASOURCE_TYPE, from_json_hook=InfluxQLQuery.from_json
        )
    )
