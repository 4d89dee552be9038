"""``ahunt scorer --workers N``'s supervisor with real child processes: restart with backoff,
give up when the workers keep failing, forward SIGTERM, kill what outlives the grace period."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from services.scorer.supervisor import RestartPolicy, Supervisor, worker_env

# A worker that stops cleanly on SIGTERM (exit 0), like the scorer.
SERVING = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "time.sleep(60)\n"
)


def _python(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


def _in_thread(supervisor: Supervisor) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(supervisor.run()), daemon=True)
    thread.start()
    return thread, result


def _wait(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_crashed_worker_is_restarted_after_a_backoff_and_sigterm_stops_all(
    tmp_path: Path,
) -> None:
    spawned: list[tuple[int, float]] = []
    marker = tmp_path / "crashed-once"

    def spawn(i: int) -> subprocess.Popen[bytes]:
        spawned.append((i, time.monotonic()))
        if i == 1 and not marker.exists():  # worker 1 crashes once, then serves
            marker.touch()
            return _python("import sys; sys.exit(3)")
        return _python(SERVING)

    policy = RestartPolicy(backoff_s=0.5, backoff_max_s=2, max_failures=3, window_s=60)
    supervisor = Supervisor(2, spawn, policy, grace_s=10, tick_s=0.05)
    thread, result = _in_thread(supervisor)
    _wait(lambda: len(spawned) == 3)
    assert [i for i, _ in spawned] == [0, 1, 1]
    restarted = [t for i, t in spawned if i == 1]
    assert restarted[1] - restarted[0] >= 0.5  # the backoff was waited
    time.sleep(0.5)
    assert len(spawned) == 3 and all(p.poll() is None for p in supervisor.procs.values())
    supervisor.stop()  # what SIGTERM does
    thread.join(15)
    assert result == [0]  # both workers stopped cleanly
    assert all(p.returncode == 0 for p in supervisor.procs.values())


def test_workers_that_keep_failing_make_the_supervisor_exit_non_zero() -> None:
    spawned: list[int] = []

    def spawn(i: int) -> subprocess.Popen[bytes]:
        spawned.append(i)
        if i == 0:
            return _python("import sys; sys.exit(2)")  # e.g. a configuration it refuses
        return _python(SERVING)

    policy = RestartPolicy(backoff_s=0.05, backoff_max_s=0.1, max_failures=3, window_s=60)
    supervisor = Supervisor(2, spawn, policy, grace_s=10, tick_s=0.05)
    thread, result = _in_thread(supervisor)
    thread.join(30)
    assert result == [1]
    assert spawned.count(0) == 4  # the first start and three restarts, then it gave up
    assert all(p.poll() is not None for p in supervisor.procs.values())  # worker 1 stopped too


def test_a_worker_that_ignores_sigterm_is_killed_after_the_grace_period() -> None:
    stubborn = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    stubborn += "time.sleep(60)\n"
    supervisor = Supervisor(1, lambda _i: _python(stubborn), grace_s=1.0, tick_s=0.05)
    thread, result = _in_thread(supervisor)
    _wait(lambda: bool(supervisor.procs))
    time.sleep(0.5)  # let the child install its handler
    started = time.monotonic()
    supervisor.stop()
    thread.join(15)
    assert result == [1] and 1.0 <= time.monotonic() - started < 10
    assert supervisor.procs[0].returncode == -9


def test_each_worker_gets_its_own_metrics_port_and_runs_one_process() -> None:
    env = worker_env({"AHUNT_SCORER_WORKERS": "4", "X": "y"}, 2, 9101)
    assert env == {"AHUNT_SCORER_WORKERS": "1", "AHUNT_SCORER_METRICS_PORT": "9103", "X": "y"}
    assert worker_env({}, 3, 0)["AHUNT_SCORER_METRICS_PORT"] == "0"  # off stays off
