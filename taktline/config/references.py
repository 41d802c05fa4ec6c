"""Checks across the plant file that a schema cannot express: ids, references, mappings."""

from __future__ import annotations

from collections.abc import Iterable

from taktline.config.yaml_source import KeyPath, format_key_path
from taktline.model.alerts import alert_problems
from taktline.model.assets import Line
from taktline.model.paths import CounterPath
from taktline.model.plant import Plant
from taktline.model.rosters import roster_problems
from taktline.model.sources import TEMPLATE_LEVELS, MqttSource, OpcUaSource

Problem = tuple[KeyPath, str]


def check_plant(plant: Plant) -> list[Problem]:
    """Every cross-reference problem of a plant, each with the key path it belongs to."""
    problems: list[Problem] = []
    problems += _duplicates((("sites", i, "id"), s.id) for i, s in enumerate(plant.sites))
    problems += _duplicates(
        (("sites", si, "areas", ai, "lines", li, "id"), line.id)
        for si, site in enumerate(plant.sites)
        for ai, area in enumerate(site.areas)
        for li, line in enumerate(area.lines)
    )
    for si, site in enumerate(plant.sites):
        problems += _duplicates(
            (("sites", si, "areas", ai, "id"), a.id) for ai, a in enumerate(site.areas)
        )
        for ai, area in enumerate(site.areas):
            for li, line in enumerate(area.lines):
                problems += _check_line(plant, ("sites", si, "areas", ai, "lines", li), line)
    problems += _duplicates((("sources", i, "id"), s.id) for i, s in enumerate(plant.sources))
    problems += _duplicates((("milestones", i, "id"), m.id) for i, m in enumerate(plant.milestones))
    problems += _check_mappings(plant)
    problems += _check_opcua_nodes(plant)
    problems += _check_mqtt(plant)
    problems += _check_milestones(plant)
    problems += roster_problems(plant)
    problems += alert_problems(plant)
    return problems


def _duplicates(items: Iterable[tuple[KeyPath, str]]) -> list[Problem]:
    seen: dict[str, KeyPath] = {}
    problems: list[Problem] = []
    for path, value in items:
        if value in seen:
            problems.append(
                (path, f"'{value}' is used twice (first at {format_key_path(seen[value])})")
            )
        else:
            seen[value] = path
    return problems


def _check_line(plant: Plant, at: KeyPath, line: Line) -> list[Problem]:
    problems = _duplicates(((*at, "stations", i, "id"), s.id) for i, s in enumerate(line.stations))
    for si, station in enumerate(line.stations):
        problems += _duplicates(
            ((*at, "stations", si, "counters", ci, "name"), c.name)
            for ci, c in enumerate(station.counters)
        )
    if line.shift_calendar not in plant.shift_calendars:
        known = ", ".join(sorted(plant.shift_calendars))
        problems.append(
            ((*at, "shift_calendar"), f"no shift calendar '{line.shift_calendar}' (have: {known})")
        )
    station_id, _, counter_name = line.output.partition("/")
    output = next((s for s in line.stations if s.id == station_id), None)
    if output is None or not any(c.name == counter_name for c in output.counters):
        problems.append(
            ((*at, "output"), f"'{line.output}' is not a station/counter of line '{line.id}'")
        )
    return problems


def _check_mappings(plant: Plant) -> list[Problem]:
    problems: list[Problem] = []
    mapped: dict[CounterPath, KeyPath] = {}
    known = {str(path) for path, _ in plant.counters()}  # spares a walk of the tree per node
    for si, source in enumerate(plant.sources):
        refs: list[tuple[KeyPath, str]] = []
        if isinstance(source, OpcUaSource):
            refs = [
                (("sources", si, "nodes", ni, "counter"), n.counter)
                for ni, n in enumerate(source.nodes)
            ]
        elif isinstance(source, MqttSource):
            refs = [
                (("sources", si, "topics", ti, "counter"), t.counter)
                for ti, t in enumerate(source.topics)
            ]
            if source.sparkplug is not None:
                refs += [
                    (("sources", si, "sparkplug", "metrics", mi, "counter"), m.counter)
                    for mi, m in enumerate(source.sparkplug.metrics)
                ]
            refs += _template_counters(plant, si, source)
        for path, text in refs:
            problem = None if text in known else counter_reference_problem(plant, text)
            if problem:
                problems.append((path, problem))
                continue
            counter = CounterPath.parse(text)
            if counter in mapped:
                problems.append(
                    (
                        path,
                        f"counter '{text}' is mapped twice"
                        f" (also at {format_key_path(mapped[counter])})",
                    )
                )
            else:
                mapped[counter] = path
    return problems


def _check_opcua_nodes(plant: Plant) -> list[Problem]:
    """Groups that exist, edge counting only into `increment` counters, one mapping a node."""
    problems: list[Problem] = []
    for si, source in enumerate(plant.sources):
        if not isinstance(source, OpcUaSource):
            continue
        problems += _duplicates(
            (("sources", si, "nodes", ni, "node" if n.node else "browse_path"), n.address)
            for ni, n in enumerate(source.nodes)
        )
        for ni, node in enumerate(source.nodes):
            at = ("sources", si, "nodes", ni)
            if node.group is not None and node.group not in source.groups:
                known = ", ".join(sorted(source.groups)) or "none"
                problems.append(((*at, "group"), f"no group '{node.group}' (have: {known})"))
            if node.count_edges is None or counter_reference_problem(plant, node.counter):
                continue
            counter = plant.counter(CounterPath.parse(node.counter))
            if counter is not None and counter.semantics != "increment":
                problems.append(
                    ((*at, "count_edges"), "edges are units: map them to an `increment` counter")
                )
    return problems


def _template_counters(plant: Plant, si: int, source: MqttSource) -> list[tuple[KeyPath, str]]:
    """The counters the source's templates reach, each at the key of its template."""
    found: list[tuple[KeyPath, str]] = []
    paths = [path for path, _ in plant.counters()]
    for ti, template in enumerate(source.templates):
        single = source.model_copy(
            update={"topics": [], "templates": [template], "sparkplug": None}
        )
        found += [
            (("sources", si, "templates", ti, "topic"), c) for _, c in single.addresses(paths)
        ]
    return found


def _check_mqtt(plant: Plant) -> list[Problem]:
    """Templates that reach a counter, one counter per reading address, one mapping a metric."""
    problems: list[Problem] = []
    paths = [path for path, _ in plant.counters()]
    for si, source in enumerate(plant.sources):
        if not isinstance(source, MqttSource):
            continue
        for ti, template in enumerate(source.templates):
            at = ("sources", si, "templates", ti, "topic")
            if not any(
                template.accepts(dict(zip(TEMPLATE_LEVELS, str(p).split("/"), strict=True)))
                for p in paths
            ):
                problems.append(
                    (at, f"template '{template.topic}' reaches no counter of the plant")
                )
        counters: dict[str, str] = {}
        for address, counter in source.addresses(paths):
            if counters.setdefault(address, counter) != counter:
                problems.append(
                    (
                        ("sources", si, "templates"),
                        f"messages on '{address}' would count for both '{counters[address]}'"
                        f" and '{counter}': name more levels in the template",
                    )
                )
        if source.sparkplug is not None:
            problems += _duplicates(
                (
                    ("sources", si, "sparkplug", "metrics", mi, "metric"),
                    f"{m.node}/{m.device or ''}:{m.metric}",
                )
                for mi, m in enumerate(source.sparkplug.metrics)
            )
    return problems


def counter_reference_problem(plant: Plant, text: str) -> str | None:
    """Why `text` names no counter of the plant (the first missing level), or None."""
    try:
        path = CounterPath.parse(text)
    except ValueError as exc:
        return str(exc)
    site = next((s for s in plant.sites if s.id == path.site), None)
    if site is None:
        return f"site '{path.site}' does not exist"
    area = next((a for a in site.areas if a.id == path.area), None)
    if area is None:
        return f"area '{path.area}' does not exist in site '{site.id}'"
    line = next((ln for ln in area.lines if ln.id == path.line), None)
    if line is None:
        return f"line '{path.line}' does not exist in area '{site.id}/{area.id}'"
    station = next((s for s in line.stations if s.id == path.station), None)
    if station is None:
        return f"station '{path.station}' does not exist in line '{line.id}'"
    if not any(c.name == path.counter for c in station.counters):
        return f"counter '{path.counter}' does not exist at station '{line.id}/{station.id}'"
    return None


def _check_milestones(plant: Plant) -> list[Problem]:
    problems: list[Problem] = []
    all_paths = [path for path, _ in plant.counters()]
    for mi, milestone in enumerate(plant.milestones):
        scope = milestone.scope_parts
        if not 1 <= len(scope) <= 4:
            problems.append(
                (("milestones", mi, "scope"), "a scope is site[/area[/line[/station]]]")
            )
            continue
        under = [p for p in all_paths if (p.site, p.area, p.line, p.station)[: len(scope)] == scope]
        if not under:
            problems.append(
                (
                    ("milestones", mi, "scope"),
                    f"'{milestone.scope}' matches no station of the plant",
                )
            )
        elif not any(p.counter == milestone.counter for p in under):
            problems.append(
                (
                    ("milestones", mi, "counter"),
                    f"no counter '{milestone.counter}' below '{milestone.scope}'",
                )
            )
    return problems
