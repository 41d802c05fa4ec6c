"""Latencies of `screen_latency`: probe writes matched to the count a screen showed, percentiles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bench.screen_browser import Mark


@dataclass(frozen=True, slots=True)
class Matched:
    """Per probe write k (index k - 1): seconds until the screen showed it, None if it never did."""

    dom_s: list[float | None]
    frame_s: list[float | None]


def match(walls: Sequence[float], marks: Sequence[Mark], base: int) -> Matched:
    """Write k set the register to k, so the screen should show `base + k` from then on.

    Its latency is the first mark showing at least `base + k` minus the write's wall time: when
    the screen skipped a value (two writes coalesced on the way), the later value counts for both.
    """
    dom: list[float | None] = []
    frame: list[float | None] = []
    i = 0
    for k, wall in enumerate(walls, start=1):
        while i < len(marks) and not _shows(marks[i], base + k):
            i += 1
        if i == len(marks):
            dom.append(None)
            frame.append(None)
            continue
        mark = marks[i]
        dom.append(mark.dom_s - wall)
        frame.append(None if mark.frame_s is None else mark.frame_s - wall)
    return Matched(dom, frame)


def _shows(mark: Mark, at_least: int) -> bool:
    return mark.value is not None and mark.value >= at_least


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of values sorted ascending (not empty)."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summary_ms(seconds: Sequence[float | None]) -> dict[str, float | int | None]:
    """Count, misses and p50/p95/p99/max/min/mean in ms of the matched latencies."""
    seen = sorted(1000 * s for s in seconds if s is not None)
    figures: dict[str, float | int | None] = {
        "changes": len(seconds),
        "seen": len(seen),
        "missed": len(seconds) - len(seen),
    }
    if not seen:
        return figures | dict.fromkeys(("p50", "p95", "p99", "max", "min", "mean"))
    return figures | {
        "p50": round(percentile(seen, 50), 1),
        "p95": round(percentile(seen, 95), 1),
        "p99": round(percentile(seen, 99), 1),
        "max": round(seen[-1], 1),
        "min": round(seen[0], 1),
        "mean": round(sum(seen) / len(seen), 1),
    }
