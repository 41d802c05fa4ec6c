"""CPU time and memory of another process, and how busy the machine is, from /proc (Linux).

CPU is utime + stime of every thread of the process (/proc/PID/stat), as a share of one core
over a window; memory is VmRSS (now) and VmHWM (the peak so far) from /proc/PID/status. The
machine's busy time (/proc/stat, every core, in the same unit: 100 = one core busy) tells how
much else ran during the window on a shared machine.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_KIB_PER_MB = 1024


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds the process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; fields[0] is state
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _TICKS_PER_S


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of the process in MB (MiB)."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / _KIB_PER_MB
    return values["VmRSS"], values["VmHWM"]


def machine_cpu_seconds() -> float:
    """CPU seconds every core of the machine has been busy (not idle, not waiting for I/O)."""
    with Path("/proc/stat").open(encoding="ascii") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle, iowait = fields[3], fields[4]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal; guests are in user
    return (total - idle - iowait) / _TICKS_PER_S


class MachineMeter:
    """How busy the whole machine was over a window: `start()`, later `stop()` -> % of a core."""

    def __init__(self) -> None:
        self._t0 = 0.0
        self._busy0 = 0.0

    def start(self) -> None:
        """Begin the window now."""
        self._t0 = time.monotonic()
        self._busy0 = machine_cpu_seconds()

    def stop(self) -> float:
        """Busy CPU seconds per wall second x 100 over the window (200 = two cores busy)."""
        return 100 * (machine_cpu_seconds() - self._busy0) / (time.monotonic() - self._t0)


@dataclass(frozen=True, slots=True)
class Usage:
    """What a process used over a window."""

    cpu_percent: float
    """CPU seconds per wall second x 100: 100 is one core busy."""
    rss_mb_peak: float
    """VmHWM at the window's end: the peak resident memory since the process started."""
    rss_mb_end: float
    """VmRSS at the window's end."""

    def as_dict(self) -> dict[str, float]:
        """Rounded figures for the results file."""
        return {
            "cpu_percent": round(self.cpu_percent, 1),
            "rss_mb_peak": round(self.rss_mb_peak, 1),
            "rss_mb_end": round(self.rss_mb_end, 1),
        }


class Meter:
    """Measures one process over a window: `start()`, later `stop()` -> Usage."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._t0 = 0.0
        self._cpu0 = 0.0

    def start(self) -> None:
        """Begin the window now."""
        self._t0 = time.monotonic()
        self._cpu0 = cpu_seconds(self.pid)

    def stop(self) -> Usage:
        """End the window now; the process's usage over it."""
        cpu = cpu_seconds(self.pid) - self._cpu0
        wall = time.monotonic() - self._t0
        rss, hwm = memory_mb(self.pid)
        return Usage(100 * cpu / wall, hwm, rss)
