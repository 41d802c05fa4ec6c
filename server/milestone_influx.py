"""Milestone crossings as InfluxDB points (written by `server.influx_http`).

Point: measurement `milestone`, tags `milestone` (id), `crossing` (the value crossed, so that a
step passing several values with one update makes several points), `scope`, `site` and `line`
(of the counter whose update crossed it); fields `threshold` (the value crossed), `total` (the
scope's total right after it; both integers) and `name` (string);
timestamp the crossing update's `ts` in ns. A crossing always makes the same point, so a retry,
a restart or a second server replica writing it changes nothing in InfluxDB.
"""

from __future__ import annotations

from server.crossings import Crossing
from taktline.influxwire import epoch_ns, escape_string, escape_tag

MEASUREMENT = "milestone"


def point(crossing: Crossing) -> str:
    """One crossing as one line of line protocol."""
    tags = {
        "crossing": str(crossing.value),
        "line": crossing.counter.line,
        "milestone": crossing.milestone,
        "scope": crossing.scope,
        "site": crossing.counter.site,
    }
    tag_set = ",".join(f"{key}={escape_tag(value)}" for key, value in sorted(tags.items()) if value)
    name = escape_string(crossing.name)
    ns = epoch_ns(crossing.ts)
    fields = f'name="{name}",threshold={crossing.value}i,total={crossing.total}i'
    return f"{MEASUREMENT},{tag_set} {fields} {ns}"
