"""``ahunt up``: every service comes up on the embedded defaults and everything stops cleanly."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from services.tools.stack import Stack


def _ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as response:
        return bool(response.status == 200)


@pytest.mark.timeout(240)
def test_the_whole_stack_starts_reports_its_endpoints_and_stops_cleanly(tmp_path: Path) -> None:
    stack = Stack(state_dir=tmp_path / "state", log_dir=tmp_path / "logs")
    with stack:
        assert stack.kafka and stack.redis_url
        names = {spec.name for spec in stack.specs}
        assert names == {"scorer", "feedback", "retrain"}
        for spec in stack.specs:
            assert _ok(spec.ready_url), spec.name
        # The desk is served by the feedback service, and the banner names it.
        feedback = next(spec for spec in stack.specs if spec.name == "feedback")
        desk = feedback.ready_url.replace("/healthz", "/desk")
        assert desk in feedback.endpoint and _ok(desk)
        assert stack.failed() is None
        # The stack tells the truth about durability: labels in an AOF under the state
        # directory, the embedded broker in memory only (docs/SECURITY.md).
        feedback = next(spec for spec in stack.specs if spec.name == "feedback")
        ready_url = feedback.ready_url.replace("/healthz", "/readyz")
        with urllib.request.urlopen(ready_url, timeout=5) as response:
            ready = json.loads(response.read())
        assert ready["durable"] is True and ready["kafka_durable"] is False
        assert stack.embedded_kafka and (tmp_path / "state" / "redis").is_dir()
        # The scorer waits for a first model instead of exiting (nobody bootstrapped yet).
        pids = [p.pid for p in stack.processes.values()]
    for pid in pids:  # every child has exited, none left behind
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert stack.failed() is None and not stack.processes
