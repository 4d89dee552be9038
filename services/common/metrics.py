"""Every Prometheus metric of the project, named ``ahunt_<service>_<thing>_<unit>``.

Defined once here so dashboards and alert rules have one place to check against.
"""

from __future__ import annotations

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ScorerMetrics:
    def __init__(self) -> None:
        self.consumed = Counter(
            "ahunt_scorer_alerts_consumed_total", "Kafka messages consumed from the alert topics"
        )
        self.scored = Counter("ahunt_scorer_alerts_scored_total", "alerts scored", ["survey"])
        self.published = Counter(
            "ahunt_scorer_published_total", "alerts published to a user's topic", ["user", "reason"]
        )
        self.dead_letters = Counter(
            "ahunt_scorer_dead_letters_total", "records sent to the dead-letter topic", ["reason"]
        )
        self.stage_seconds = Histogram(
            "ahunt_scorer_stage_seconds",
            "time per batch in each stage",
            ["stage"],
            buckets=LATENCY_BUCKETS,
        )
        self.end_to_end_seconds = Histogram(
            "ahunt_scorer_end_to_end_seconds",
            "from the alert's Kafka timestamp to its batch being committed",
            buckets=LATENCY_BUCKETS,
        )
        self.batch_size = Histogram(
            "ahunt_scorer_batch_size_alerts", "alerts per batch", buckets=BATCH_BUCKETS
        )
        self.lag = Gauge(
            "ahunt_scorer_consumer_lag_messages",
            "high watermark minus committed offset (never negative)",
            ["topic", "partition"],
        )
        self.model_info = Gauge(
            "ahunt_scorer_model_info", "1 for the model version in use", ["survey", "version"]
        )
        self.model_swaps = Counter(
            "ahunt_scorer_model_swaps_total", "models swapped in", ["survey"]
        )
        self.model_load_failures = Counter(
            "ahunt_scorer_model_load_failures_total", "model versions refused at load", ["survey"]
        )
        self.users = Gauge("ahunt_scorer_users", "user profiles being scored for")
        self.partition_share = Gauge(
            "ahunt_scorer_partition_share",
            "share of the input partitions this replica consumes (it spends that share of "
            "every budget)",
        )


class RegistryMetrics:
    """Set by whichever process serves them (``registry.set_live_version_info``)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.live_version = Gauge(
            "ahunt_registry_live_version_info",
            "1 for each survey's live model version in the registry",
            ["survey", "version"],
            registry=registry,
        )


def serve(port: int) -> None:
    """Expose /metrics on ``port`` (0 disables it)."""
    if port:
        start_http_server(port)
