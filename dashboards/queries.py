"""InfluxQL text for the `production` and `milestone` measurements (docs/contracts.md).

Pure functions of tag values: every query here reads `production` (tags site, area, line,
station, counter; integer fields total, delta, raw) or `milestone`. Grafana macros are left in:
`$timeFilter` (the dashboard's time range), `$__interval_ms`, and `${line}` (the line detail
dashboard's variable). Lifetime totals have no time bound: `total` is itself lifetime, the newest
point of each counter is the truth however long ago it was written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from taktline.model import CounterPath

PRODUCTION = "production"
MILESTONE = "milestone"
TAG_LEVELS = ("site", "area", "line", "station", "counter")
_SERIES = ", ".join(f'"{tag}"' for tag in TAG_LEVELS)


def literal(value: str) -> str:
    """An InfluxQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def tags_equal(tags: Mapping[str, str]) -> str:
    """`"site" = 'a' AND "line" = 'b'` for these tags, in the order given."""
    return " AND ".join(f'"{tag}" = {literal(value)}' for tag, value in tags.items())


def counter_filter(path: CounterPath) -> str:
    """The condition selecting exactly one counter."""
    return tags_equal(path.tags())


def any_of(conditions: Sequence[str]) -> str:
    """The conditions joined with OR, each in parentheses."""
    if not conditions:
        raise ValueError("any_of needs at least one condition")
    return " OR ".join(f"({condition})" for condition in conditions)


def line_is(variable: str) -> str:
    """The line is the one the dashboard variable names. ANDed with a counter of one line, a
    panel's per-line query returns data for the selected line and nothing for the others."""
    return f"\"line\" = '${{{variable}}}'"


def lifetime_total(where: str) -> str:
    """Sum over the matching counters of each one's newest lifetime `total`."""
    return f'SELECT sum("total") FROM ({_newest_totals(where)})'


def lifetime_expression(expression: str, where: str) -> str:
    """An expression of the summed lifetime total, named `sum`: e.g. `30000000 - sum("total")`
    for the units still to go, `sum("total") % 1000000` for the progress within a step."""
    return f'SELECT {expression} AS "sum" FROM ({_newest_totals(where)})'


def _newest_totals(where: str) -> str:
    return f'SELECT last("total") AS "total" FROM "{PRODUCTION}" WHERE {where} GROUP BY {_SERIES}'


def units(where: str, scale: str = "", name: str = "units") -> str:
    """Units produced (sum of `delta`) in the dashboard's time range as field `name`; `scale`
    is appended to the aggregate, e.g. ` * 100 / 435`."""
    return (
        f'SELECT sum("delta"){scale} AS "{name}" FROM "{PRODUCTION}"'
        f" WHERE $timeFilter AND ({where})"
    )


def units_per_bucket(
    where: str, bucket: str, scale: str = "", zone: str | None = None, name: str = "units"
) -> str:
    """Units per time bucket (`1h`, `8h, 6h` with an offset, `$__interval`), empty buckets 0;
    `zone` aligns the buckets to local wall-clock time."""
    tz = f" tz({literal(zone)})" if zone else ""
    return f"{units(where, scale, name)} GROUP BY time({bucket}) fill(0){tz}"


def stopped_seconds(where: str, window_s: int) -> str:
    """Seconds of the time range (`$__range_s`) not covered by a `window_s` bucket with units.

    Counted from the non-empty buckets: InfluxDB 1.x hides the rows of a subquery's fill(0)
    from the outer query, so the empty buckets cannot be counted directly.
    """
    inner = (
        f'SELECT sum("delta") AS "units" FROM "{PRODUCTION}" WHERE $timeFilter AND ({where})'
        f" GROUP BY time({window_s}s)"
    )
    return (
        f'SELECT $__range_s - count("units") * {window_s} AS "stopped" FROM ({inner})'
        " WHERE $timeFilter"
    )


def milestone_rows() -> str:
    """Every crossed milestone in the time range, newest first, with all its tags and fields."""
    return f'SELECT * FROM "{MILESTONE}" WHERE $timeFilter ORDER BY time DESC'


def lifetime_per_counter(where: str) -> str:
    """Each matching counter's lifetime total per `$__interval`, carried forward over gaps;
    stacked, the series add up to the sum (a subquery's fill(previous) is unreliable in 1.x)."""
    return (
        f'SELECT last("total") AS "total" FROM "{PRODUCTION}" WHERE $timeFilter AND ({where})'
        f" GROUP BY time($__interval), {_SERIES} fill(previous)"
    )
