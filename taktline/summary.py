"""A short human summary of a plant, printed by `taktline check-config`."""

from __future__ import annotations

from collections import Counter as Tally

from taktline.model.plant import Plant


def summarize(plant: Plant) -> str:
    """Counts of everything, then one line per line with its stations and counters."""
    lines = list(plant.lines())
    stations = [station for placed in lines for station in placed.line.stations]
    counters = list(plant.counters())
    kinds = Tally(source.type for source in plant.sources)
    source_text = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
    out = [
        f"plant      {plant.name}",
        f"sites {len(plant.sites)}, lines {len(lines)}, stations {len(stations)}, "
        f"counters {len(counters)}, sources {len(plant.sources)}"
        + (f" ({source_text})" if source_text else "")
        + f", milestones {len(plant.milestones)}, shift calendars {len(plant.shift_calendars)}",
    ]
    for placed in lines:
        target = placed.line.target
        plan = (
            f"takt {target.takt_seconds:g} s"
            if target.takt_seconds
            else f"{target.units_per_shift} units/shift"
        )
        stations_text = "; ".join(
            f"{s.id}({', '.join(c.name for c in s.counters)})" for s in placed.line.stations
        )
        out.append(
            f"  line {placed.site.id}/{placed.area.id}/{placed.line.id:<8} {placed.line.name}"
            f" | {plan} | counts {placed.line.output} | {stations_text}"
        )
    for source in plant.sources:
        mapped = len(source.nodes) if source.type == "opcua" else len(source.topics)
        where = (
            source.endpoint
            if source.type == "opcua"
            else (f"mqtt://{source.broker.host}:{source.broker.port}")
        )
        out.append(f"  source {source.id:<12} {source.type:<6} {where} ({mapped} counters)")
    return "\n".join(out)
