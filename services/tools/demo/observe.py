"""What the demo reads off the running stack, as any client would: the feedback API over HTTP,
the scorer's Prometheus metrics, and the dead-letter topic."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from services.common.kafka import consumer, poll_batch
from services.common.settings import KafkaSettings
from services.common.topics import DEAD_LETTERS


def api(method: str, url: str, token: str, body: dict[str, Any] | None = None) -> Any:
    """One call of the feedback API with a user's token; the JSON answer."""
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def metric_samples(url: str) -> list[Any]:
    """Every sample of a service's ``/metrics``, through prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def scored(url: str) -> float:
    """Alerts the scorer has scored so far."""
    return sum(s.value for s in metric_samples(url) if s.name == "ahunt_scorer_alerts_scored_total")


def live_versions(url: str) -> set[str]:
    """Versions the scorer reports as live (``ahunt_scorer_model_info`` == 1)."""
    return {
        s.labels["version"]
        for s in metric_samples(url)
        if s.name == "ahunt_scorer_model_info" and s.value == 1.0
    }


def wait_until(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    every: float = 0.5,
    failed: Callable[[], str | None] = lambda: None,
) -> None:
    """Poll ``check`` until it holds; TimeoutError naming ``what`` after ``timeout`` seconds.

    ``failed`` names a stack child that has exited: waiting on a dead scorer would only end at the
    timeout (it did: ten minutes for a scorer that had stopped at its first batch), so the wait
    ends at once with the name, and the caller points at the logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        dead = failed()
        if dead is not None:
            raise RuntimeError(f"demo: {dead} exited while waiting for {what}")
        time.sleep(every)
    raise TimeoutError(f"demo: {what} did not happen within {timeout:.0f} s")


def read_dead_letters(kafka: KafkaSettings, bootstrap: str) -> list[dict[str, Any]]:
    """Every envelope on the dead-letter topic (its reason, source and error class)."""
    c = consumer(kafka, bootstrap, f"demo-dlq-{time.time_ns()}")
    c.subscribe([DEAD_LETTERS])
    out: list[dict[str, Any]] = []
    quiet = time.monotonic()
    try:
        while time.monotonic() - quiet < 3.0:
            for m in poll_batch(c, 500, 0.5):
                out.append(json.loads(m.value() or b"{}"))
                quiet = time.monotonic()
    finally:
        c.close()
    return [{k: d.get(k) for k in ("reason", "alert_id", "source", "error_class")} for d in out]
