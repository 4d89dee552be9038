"""`ahunt bench throughput` charges each process's own CPU time to its role (bench/cpu.py)."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.cpu import CpuMeter, cpu_seconds, roles, runnable

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"


def test_a_child_scorer_is_found_and_its_cpu_charged_per_alert() -> None:
    # The fragment after -c is only an argument: it makes the child look like a scorer.
    child = subprocess.Popen(
        [sys.executable, "-c", BURN.format(s=1.0) + "time.sleep(30)", "services.scorer"]
    )
    try:
        deadline = time.monotonic() + 10
        while child.pid not in roles().get("scorer", []):
            assert time.monotonic() < deadline, "the child scorer was not found"
            time.sleep(0.05)
        meter = CpuMeter(roles())
        while (cpu_seconds(child.pid) or 0.0) < 0.35:  # the burn is still going
            time.sleep(0.05)
        out = meter.stop(alerts=100)
    finally:
        child.kill()
        child.wait()
    per_alert = out["cpu_ms_per_alert"]
    assert isinstance(per_alert, dict)
    # at most 1 s spent during the meter, over 100 alerts: at most 10 ms each, and some of it
    assert 0.0 < per_alert["scorer"] <= 10.0 + 0.1
    assert out["scorer_path_ms_per_alert"] == per_alert["scorer"]
    assert cpu_seconds(child.pid) is None  # a process that is gone reads as None, not 0


def test_the_run_queue_counts_at_least_this_process() -> None:
    assert runnable() >= 1  # this process is running while it reads it
