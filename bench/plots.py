"""PNG plots of benchmark results: each taktline figure beside its reference, with the ratio.

`write(out_dir, document)` draws `NAME.png` for every benchmark of a results document (the
shape of `latest.json` and `NAME.json`) that has a plotter in `PLOTTERS`; `python -m bench
--plots-only` redraws them from the results files without running anything. Figures are built
with matplotlib's object API (no pyplot, no global state) and saved without a version stamp, so
the same results give the same file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, StrMethodFormatter

TAKTLINE = "#1f77b4"
REFERENCE = "#9e9e9e"
PEER = "#ff7f0e"
GOAL = "#d62728"
DPI = 100
_WIDTH = 0.38
_THOUSANDS = StrMethodFormatter("{x:,.0f}")

Entry = dict[str, Any]
"""One benchmark's entry in a results document: title, parameters, figures, summary, notes."""


def write(out_dir: Path, document: dict[str, Any]) -> list[Path]:
    """Draw NAME.png into `out_dir` for each benchmark of `document` that has a plotter."""
    written = []
    for name, entry in document["benchmarks"].items():
        if name in PLOTTERS:
            path = out_dir / f"{name}.png"
            figure(name, entry).savefig(path, dpi=DPI, metadata={"Software": None})
            written.append(path)
    return written


def figure(name: str, entry: Entry) -> Figure:
    """The figure of one benchmark's results."""
    fig = PLOTTERS[name](entry)
    fig.suptitle(entry["title"], fontsize=11)
    fig.tight_layout()
    return fig


def opcua_intake(entry: Entry) -> Figure:
    """Rate, CPU and RSS per size: the bare asyncua subscription beside the edge."""
    rows = entry["figures"]
    sizes = [f"{r['nodes']:,}" for r in rows]
    fig = Figure(figsize=(13, 4.2))
    rate, cpu, rss = fig.subplots(1, 3)
    pairs = [
        (rate, "notifications_per_s", "updates_per_s", "updates_vs_bare", "per second"),
        (cpu, "cpu_percent", "cpu_percent", "cpu_vs_bare", "CPU, % of one core"),
        (rss, "rss_mb_peak", "rss_mb_peak", "rss_peak_vs_bare", "peak RSS, MB"),
    ]
    for ax, bare_key, own_key, ratio_key, label in pairs:
        _pair(
            ax,
            sizes,
            ("bare asyncua", [r["bare"][bare_key] for r in rows]),
            ("taktline edge", [r["taktline"][own_key] for r in rows]),
            [r["ratios"].get(ratio_key) for r in rows],
        )
        ax.set_xlabel("counters changing at 1 Hz")
        ax.set_ylabel(label)
    rate.yaxis.set_major_formatter(_THOUSANDS)
    rate.set_title("rate (x bare)")
    cpu.set_title("CPU (x bare)")
    rss.set_title("memory (x bare)")
    return fig


def mqtt_intake(entry: Entry) -> Figure:
    """Messages/s (each bar x mosquitto_sub, the edge's goal marked) and CPU per message, per
    consumer and QoS; the references grey, taktline's consumers blue."""
    rows = entry["figures"]
    consumers = list(dict.fromkeys(r["consumer"] for r in rows))
    ours = ("collector", "edge")
    fig = Figure(figsize=(12, 4.2))
    rate, cost = fig.subplots(1, 2)
    for i, qos in enumerate(sorted({r["qos"] for r in rows})):
        by_consumer = {r["consumer"]: r for r in rows if r["qos"] == qos}
        shown = [by_consumer[c] for c in consumers if c in by_consumer]
        x = [consumers.index(r["consumer"]) + (i - 0.5) * _WIDTH for r in shown]
        style = {
            "color": [TAKTLINE if r["consumer"] in ours else REFERENCE for r in shown],
            "alpha": 0.55 if i == 0 else 1.0,
        }
        bars = rate.bar(x, [r["msgs_per_s"] for r in shown], _WIDTH, **style)
        rate.bar_label(bars, [_times(r["vs_mosquitto_sub"]) for r in shown], fontsize=7)
        micros = [r["cpu_percent"] * 1e4 / r["msgs_per_s"] for r in shown]
        cost.bar_label(cost.bar(x, micros, _WIDTH, **style), fmt="%.1f", fontsize=7)
        goal = entry["summary"].get(f"edge_qos{qos}", {}).get("goal")
        if goal and "edge" in by_consumer:
            at = consumers.index("edge") + (i - 0.5) * _WIDTH
            rate.hlines(goal, at - _WIDTH / 2, at + _WIDTH / 2, color=GOAL, linestyles="--")
    for ax in (rate, cost):
        ax.set_xticks(range(len(consumers)), consumers)
    rate.set_yscale("log")
    rate.set_ylabel("messages per second (log)")
    rate.yaxis.set_major_formatter(_THOUSANDS)
    rate.set_title("drain rate (x mosquitto_sub; red: the edge's goal)")
    cost.set_ylabel("CPU per message, µs")
    cost.set_title("consumer CPU per message")
    fig.supxlabel("light: QoS 0, dark: QoS 1; grey: references, blue: taktline", fontsize=9)
    return fig


def influx_sink(entry: Entry) -> Figure:
    """Points/s and CPU per batch size and gzip: the bare POST beside the sink."""
    rows = entry["figures"]
    groups = [f"{r['batch']:,}\n{'gzip' if r['gzip'] else 'plain'}" for r in rows]
    fig = Figure(figsize=(12, 4.2))
    rate, cpu = fig.subplots(1, 2)
    _pair(
        rate,
        groups,
        ("bare POST", [r["bare_points_per_s"] for r in rows]),
        ("taktline sink", [r["sink_points_per_s"] for r in rows]),
        [r["sink_vs_bare"] for r in rows],
    )
    _pair(
        cpu,
        groups,
        ("bare POST", [r["bare_cpu_percent"] for r in rows]),
        ("taktline sink", [r["sink_cpu_percent"] for r in rows]),
        [_ratio(r["sink_cpu_percent"], r["bare_cpu_percent"]) for r in rows],
    )
    rate.set_ylabel("points per second")
    rate.yaxis.set_major_formatter(_THOUSANDS)
    rate.set_title("write rate (x bare POST)")
    cpu.set_ylabel("CPU, % of one core")
    cpu.set_title("writer CPU (x bare POST)")
    for ax in (rate, cpu):
        ax.set_xlabel("batch size")
    return fig


def screen_latency(entry: Entry) -> Figure:
    """Latency percentiles against the 300 ms goal; the server's CPU per phase against 20%."""
    rows = entry["figures"]
    fig = Figure(figsize=(12, 4.2))
    latency, cpu = fig.subplots(1, 2)
    stats = ("p50", "p95", "p99", "max")
    groups = [f"{r['lines']} lines" for r in rows]
    _pair(
        latency,
        [f"{g}\n{s}" for g in groups for s in stats],
        ("frame shown", [r["frame_latency_ms"][s] for r in rows for s in stats]),
        ("DOM updated", [r["latency_ms"][s] for r in rows for s in stats]),
        [None] * len(groups) * len(stats),
    )
    _goal(latency, 300, "goal p99 < 300 ms")
    latency.set_ylabel("register change to screen, ms")
    latency.set_title("latency")
    phases = (("no_screen", "no screen"), ("streams", "event streams"), ("screens", "pages"))
    cpu.bar(
        [f"{g}\n{label}" for g in groups for _, label in phases],
        [r["server"][key]["cpu_percent"] for r in rows for key, _ in phases],
        _WIDTH * 2,
        color=TAKTLINE,
        label="taktline server",
    )
    _goal(cpu, 20, "goal < 20%")
    cpu.set_ylabel("CPU, % of one core")
    cpu.set_title("server CPU with 50 screens")
    return fig


def nodered_peer(entry: Entry) -> Figure:
    """The highest rate without loss of each; CPU and RSS per offered rate, side by side."""
    rows = entry["figures"]
    systems = (("taktline", "taktline edge", TAKTLINE), ("nodered", "Node-RED", PEER))
    fig = Figure(figsize=(13, 4.2))
    best, cpu, rss = fig.subplots(1, 3)
    highest = [
        entry["summary"].get(f"{key}_max_sustained_msgs_per_s") or 0 for key, _, _ in systems
    ]
    bars = best.barh([label for _, label, _ in systems], highest, color=[c for *_, c in systems])
    capped = [not entry["summary"].get(f"{key}_limit_found", True) for key, _, _ in systems]
    labels = [
        f"{'>= ' if cap else ''}{value:,}" for value, cap in zip(highest, capped, strict=True)
    ]
    labels[0] += f" ({_times(entry['summary'].get('max_rate_vs_nodered'))} Node-RED)"
    best.bar_label(bars, labels, fontsize=8)
    best.set_xlabel("messages per second")
    best.xaxis.set_major_formatter(_THOUSANDS)
    best.set_title("highest rate without loss")
    best.margins(x=0.45)
    for ax, key, label in ((cpu, "cpu_percent", "CPU, % of one core"), (rss, "rss_mb_peak", "MB")):
        for system, name, color in systems:
            own = [r for r in rows if r["system"] == system]
            ax.plot([r["rate"] for r in own], [r[key] for r in own], color=color, label=name)
            kept = [r for r in own if r["sustained"]]
            ax.scatter([r["rate"] for r in kept], [r[key] for r in kept], color=color, zorder=3)
            lost = [r for r in own if not r["sustained"]]
            ax.scatter(
                [r["rate"] for r in lost],
                [r[key] for r in lost],
                facecolors="white",
                edgecolors=color,
                zorder=3,
                label=f"{name}: not sustained" if lost else None,
            )
        ax.xaxis.set_major_locator(FixedLocator(sorted({r["rate"] for r in rows})))
        ax.xaxis.set_major_formatter(_THOUSANDS)
        ax.tick_params(axis="x", labelsize=8)
        ax.set_xlabel("offered rate, messages per second")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
    cpu.legend(fontsize=8, loc="lower right")
    cpu.set_title("consumer CPU")
    rss.set_title("consumer peak RSS")
    return fig


PLOTTERS: dict[str, Callable[[Entry], Figure]] = {
    "opcua_intake": opcua_intake,
    "mqtt_intake": mqtt_intake,
    "influx_sink": influx_sink,
    "screen_latency": screen_latency,
    "nodered_peer": nodered_peer,
}
"""A plotter per benchmark name."""


def _pair(
    ax: Axes,
    groups: Sequence[str],
    reference: tuple[str, Sequence[float]],
    own: tuple[str, Sequence[float]],
    ratios: Sequence[float | None],
) -> None:
    """Grouped bars: the reference (grey) beside taktline (blue), taktline's labelled x ratio."""
    x = range(len(groups))
    ax.bar([n - _WIDTH / 2 for n in x], reference[1], _WIDTH, label=reference[0], color=REFERENCE)
    bars = ax.bar([n + _WIDTH / 2 for n in x], own[1], _WIDTH, label=own[0], color=TAKTLINE)
    ax.bar_label(bars, [_times(r) for r in ratios], fontsize=8)
    ax.set_xticks(list(x), groups, fontsize=8)
    ax.legend(fontsize=8)


def _goal(ax: Axes, value: float, label: str) -> None:
    ax.axhline(value, color=GOAL, linestyle="--", linewidth=1, label=label)
    ax.legend(fontsize=8)


def _ratio(value: float, reference: float) -> float | None:
    return value / reference if reference else None


def _times(ratio: float | None) -> str:
    return "" if ratio is None else f"{ratio:.2f}x"
