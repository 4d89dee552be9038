"""``ahunt scorer --workers N``: N scorer processes in one consumer group, supervised.

One Python process runs the scoring loop on one core (the GIL); a node with more cores runs more
processes. They join the same consumer group, so Kafka splits the input partitions between them
(a worker beyond the partition count idles: partitions >= replicas x workers, docs/OPERATIONS.md).
Each worker is a plain ``python -m services.scorer`` with ``AHUNT_SCORER_WORKERS=1`` and its own
metrics port (``AHUNT_SCORER_METRICS_PORT`` + i; 0 keeps /metrics off for all).

Supervision, so a node needs no external supervisor:

- a worker that exits while the supervisor is not stopping is restarted after a backoff that
  doubles with each failure of that worker within ``window_s`` (``backoff_s`` .. ``backoff_max_s``);
- more than ``max_failures`` failures of all workers within ``window_s``: the workers keep
  failing (a broker down, a bad configuration), so the others are stopped and the supervisor
  exits 1: the orchestrator sees the failure instead of a process that restarts forever;
- SIGTERM and SIGINT are forwarded (SIGTERM) to every worker, each finishes and commits its batch;
  a worker still running after ``grace_s`` is killed (it replays from its last commit). Exit 0 if
  every worker exited 0, else 1.

The decisions (:class:`RestartPolicy`) are pure; the processes and signals are the edges.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("ahunt.scorer.supervisor")


@dataclass
class RestartPolicy:
    """When to restart a failed worker, and when to give up on all of them."""

    backoff_s: float = 1.0
    backoff_max_s: float = 30.0
    max_failures: int = 5
    window_s: float = 60.0
    failures: deque[tuple[float, int]] = field(default_factory=deque)  # (time, worker)

    def failed(self, worker: int, now: float) -> float | None:
        """Record a failure of ``worker`` at ``now``: the delay before its restart, or None
        to give up (too many failures of all workers within the window).

        >>> p = RestartPolicy(backoff_s=1, backoff_max_s=3, max_failures=3, window_s=60)
        >>> [p.failed(0, t) for t in (0, 1, 2)], p.failed(1, 3)
        ([1, 2, 3], None)
        >>> p.failed(1, 100)  # the earlier failures are out of the window
        1
        """
        self.failures.append((now, worker))
        while self.failures and self.failures[0][0] < now - self.window_s:
            self.failures.popleft()
        if len(self.failures) > self.max_failures:
            return None
        mine = sum(1 for _, w in self.failures if w == worker)
        return min(self.backoff_max_s, self.backoff_s * 2 ** (mine - 1))


def worker_env(base: dict[str, str], index: int, metrics_port: int) -> dict[str, str]:
    """A worker's environment: one worker each (no recursion), its own metrics port."""
    return {
        **base,
        "AHUNT_SCORER_WORKERS": "1",
        "AHUNT_SCORER_METRICS_PORT": str(metrics_port + index if metrics_port else 0),
    }


def spawn_scorer(index: int, metrics_port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.scorer"],
        env=worker_env(dict(os.environ), index, metrics_port),
    )


@dataclass
class Supervisor:
    workers: int
    spawn: Callable[[int], subprocess.Popen[bytes]]
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    grace_s: float = 60.0
    tick_s: float = 0.2
    stopping: bool = False
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    restart_at: dict[int, float] = field(default_factory=dict)

    def stop(self, _signum: int = 0, _frame: object = None) -> None:
        self.stopping = True
        for proc in list(self.procs.values()):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def run(self) -> int:
        for i in range(self.workers):
            self.procs[i] = self.spawn(i)
        log.info("%d scorer workers: pids %s", self.workers, [p.pid for p in self.procs.values()])
        while not self.stopping:
            now = time.monotonic()
            for i, proc in list(self.procs.items()):
                code = proc.poll()
                if code is None or self.stopping:
                    continue
                del self.procs[i]
                delay = self.policy.failed(i, now)
                if delay is None:
                    log.error(
                        "worker %d exited %d: more than %d worker failures within %.0f s, "
                        "stopping all workers",
                        i,
                        code,
                        self.policy.max_failures,
                        self.policy.window_s,
                    )
                    self.stop()
                    self._wait_all()
                    return 1
                log.warning("worker %d exited %d; restarting it in %.1f s", i, code, delay)
                self.restart_at[i] = now + delay
            for i, at in list(self.restart_at.items()):
                if now >= at and not self.stopping:
                    del self.restart_at[i]
                    self.procs[i] = self.spawn(i)
            time.sleep(self.tick_s)
        codes = self._wait_all()
        return 0 if all(c == 0 for c in codes) else 1

    def _wait_all(self) -> list[int]:
        """Every worker's exit code, killing those still running after ``grace_s``."""
        deadline = time.monotonic() + self.grace_s
        codes = []
        for i, proc in self.procs.items():
            try:
                codes.append(proc.wait(max(0.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                log.error("worker %d still running %.0f s after SIGTERM: killed", i, self.grace_s)
                proc.kill()
                codes.append(proc.wait())
        return codes


def run(workers: int, metrics_port: int, policy: RestartPolicy | None = None) -> int:
    supervisor = Supervisor(
        workers, lambda i: spawn_scorer(i, metrics_port), policy or RestartPolicy()
    )
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    return supervisor.run()
