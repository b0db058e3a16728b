"""Where the CPU went during a benchmark phase: per process group and for the whole machine.

The machine is shared, so a throughput figure alone cannot say whether the gateway was short
of CPU or waiting: these counters (Linux /proc, CPU seconds) say how much each part used and
how busy the machine was in the same window. Processes that cannot be read count as zero.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far."""
    f = _stat(pid)
    return (int(f[11]) + int(f[12])) * _TICK_S if f else 0.0


def children(ppid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            f = _stat(int(entry.name))
            if f is not None and int(f[1]) == ppid:
                out.append(int(entry.name))
    return out


def parent(pid: int) -> int | None:
    f = _stat(pid)
    return int(f[1]) if f else None


def child_running(module: str) -> int | None:
    """Pid of this process's child running `python -m <module>`, if any."""
    for pid in children(os.getpid()):
        try:
            if module.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    return None


def machine_busy_s() -> float:
    """CPU seconds all cores spent not idle since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) * _TICK_S


@dataclass
class CpuMeter:
    """Groups of processes to watch: name -> their root pids (the children of a group in
    `trees` are read at each snapshot, so that new ones such as PostgreSQL backends count)."""

    roots: Mapping[str, Sequence[int]]
    trees: frozenset[str] = frozenset()

    def _pids(self, name: str, roots: Sequence[int]) -> Iterable[int]:
        if name not in self.trees:
            return roots
        return [p for root in roots for p in (root, *children(root))]

    def snapshot(self) -> dict[str, float]:
        out = {
            name: sum(process_cpu_s(p) for p in self._pids(name, roots))
            for name, roots in self.roots.items()
        }
        out["machine"] = machine_busy_s()
        return out

    @staticmethod
    def since(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
        return {k: round(after[k] - before.get(k, 0.0), 2) for k in after}
