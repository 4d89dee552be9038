"""`ahunt bench throughput` reads where a slow batch's time went from the scorers' /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from bench.throughput import stage_summary
from services.common.embedded import free_port
from services.common.metrics import LATENCY_BUCKETS


def test_stage_summary_sums_workers_and_finds_the_p99_bucket() -> None:
    urls = []
    for worker in range(2):
        registry = CollectorRegistry()
        stages = Histogram(
            "ahunt_scorer_stage_seconds",
            "t",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        published = Counter("ahunt_scorer_published", "n", ["user"], registry=registry)
        for _ in range(99):
            stages.labels("produce").observe(0.004)
        stages.labels("produce").observe(0.2 if worker else 0.004)  # one slow flush in all
        published.labels("alice").inc(10)
        port = free_port()
        start_http_server(port, addr="127.0.0.1", registry=registry)
        urls.append(f"http://127.0.0.1:{port}/metrics")
    summary = stage_summary(urls)
    assert summary["published"] == 20
    produce = summary["produce"]
    assert produce["batches"] == 200 and produce["p99_le_ms"] == 5.0
    assert abs(produce["mean_ms"] - 1000 * (199 * 0.004 + 0.2) / 200) < 0.01
