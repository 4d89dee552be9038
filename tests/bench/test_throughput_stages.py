"""`ahunt bench throughput` reads where a slow batch's time went from the scorers' /metrics."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from bench.throughput import stage_summary
from services.common.embedded import EmbeddedKafka, free_port
from services.common.metrics import LATENCY_BUCKETS
from services.common.settings import KafkaSettings


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


def test_the_survey_producers_own_broker_cpu_is_measured_and_taken_out_of_the_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The latency phase's paced producer costs the broker CPU that is the bench's, not the
    scorers': measured alone on a real broker, then subtracted from the phase's scorer path."""
    import bench.throughput as throughput

    monkeypatch.setattr(throughput, "INGEST_S", 1.0)
    with EmbeddedKafka() as kafka:
        ingest = throughput._ingest(
            KafkaSettings(), kafka.bootstrap_servers, [b"x" * 20_000], 250, 2
        )
    assert ingest["alerts"] == 250
    broker = ingest["cpu_ms_per_alert"]["broker"]  # type: ignore[index]
    assert broker is not None and broker > 0
    phase: dict[str, object] = {"scorer_path_ms_per_alert": 3.0}
    throughput._without_ingest(phase, {"cpu_ms_per_alert": {"broker": 1.25}})
    assert phase["scorer_path_without_ingest_ms_per_alert"] == 1.75
    assert phase["ingest_broker_ms_per_alert"] == 1.25


def test_the_latency_phase_runs_each_checkouts_own_default_poll(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The steady-rate phase measures the scorer as it ships (its default batch gathering),
    read from the checkout under test, not from this one nor from the environment."""
    import shutil
    from pathlib import Path

    import bench.throughput as throughput
    from services.scorer.settings import ScorerSettings

    monkeypatch.setenv("AHUNT_SCORER_POLL_TIMEOUT_S", "9")  # an operator's value, not a default
    ours = ScorerSettings.model_fields["poll_timeout_s"].default
    assert throughput._scorer_default(None, "poll_timeout_s") == ours
    repo = Path(throughput.__file__).resolve().parents[1]
    for part in ("services", "models", "schemas"):
        shutil.copytree(repo / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    settings = tmp_path / "services/scorer/settings.py"
    text = settings.read_text()
    assert f"default={ours}," in text
    settings.write_text(text.replace(f"default={ours},", "default=0.125,", 1))
    assert throughput._scorer_default(tmp_path, "poll_timeout_s") == 0.125
