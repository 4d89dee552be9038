"""CPU time of the benchmark's processes, from their own counters (``/proc/<pid>/stat``).

Wall-clock rates on a shared 2-core machine swing by 2x between runs; the CPU seconds a process
spent per alert move far less, so changes are judged by them. Each role (scorer, broker, Redis,
the benchmark process itself: producer and reader) is found among this process's descendants by
its command line, and its CPU time (all threads, user + system) is read at the start and the end
of a phase.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
# Command-line fragments of each role, checked in this order.
ROLES: tuple[tuple[str, str], ...] = (
    ("scorer", "services.scorer"),
    ("broker", "tansu"),
    ("redis", "redis-server"),
)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (all its threads); None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15)


def runnable() -> int:
    """Processes running or ready to run on the machine now (``procs_running`` of /proc/stat,
    this one included): above the core count, someone waits for a CPU."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("procs_running "):
            return int(line.split()[1])
    return 0


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process (``/proc/<pid>/stat``, field 4)."""
    out: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        out[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def descendants(pid: int) -> list[int]:
    parents = _parents()
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        todo += kids
    return found


def role_of(pid: int) -> str | None:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    return next((role for role, fragment in ROLES if fragment in cmdline), None)


def roles(extra: Mapping[str, list[int]] | None = None) -> dict[str, list[int]]:
    """The pids of each role among this process's descendants, with this process as
    ``bench`` (the paced producer and the latency reader live here)."""
    out: dict[str, list[int]] = {"bench": [os.getpid()]}
    for pid in descendants(os.getpid()):
        role = role_of(pid)
        if role is not None:
            out.setdefault(role, []).append(pid)
    for role, pids in (extra or {}).items():
        out.setdefault(role, []).extend(p for p in pids if p not in out.get(role, []))
    return out


@dataclass
class CpuMeter:
    """CPU seconds per role between ``start`` and ``stop`` (``per_alert_ms``), with the 1-minute
    load average at both ends, so that a noisy phase can be recognised."""

    pids: dict[str, list[int]]

    def __post_init__(self) -> None:
        self.load_before = os.getloadavg()[0]
        self.before = {p: cpu_seconds(p) for ps in self.pids.values() for p in ps}

    def stop(self, alerts: int) -> dict[str, object]:
        after = {p: cpu_seconds(p) for ps in self.pids.values() for p in ps}
        per_role: dict[str, float] = {}
        for role, ps in self.pids.items():
            spent = 0.0
            for p in ps:
                b, a = self.before.get(p), after.get(p)
                if b is not None and a is not None:
                    spent += a - b
            per_role[role] = spent
        out: dict[str, object] = {
            "alerts": alerts,
            "cpu_s": {r: round(s, 3) for r, s in per_role.items()},
            "cpu_ms_per_alert": {
                r: round(1000 * s / alerts, 4) if alerts else None for r, s in per_role.items()
            },
            "load1_before": round(self.load_before, 2),
            "load1_after": round(os.getloadavg()[0], 2),
        }
        server_side = sum(per_role.get(r, 0.0) for r in ("scorer", "broker", "redis"))
        out["scorer_path_ms_per_alert"] = round(1000 * server_side / alerts, 4) if alerts else None
        return out
