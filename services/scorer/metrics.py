"""The scorer's Prometheus metrics (names fixed: dashboards and alert rules use them)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.common.metrics import LATENCY_BUCKETS, ServiceMetrics

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ScorerMetrics(ServiceMetrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.consumed = Counter(
            "ahunt_scorer_alerts_consumed_total",
            "Kafka messages consumed from the alert topics",
            registry=r,
        )
        self.scored = Counter(
            "ahunt_scorer_alerts_scored_total", "alerts scored", ["survey"], registry=r
        )
        self.published = Counter(
            "ahunt_scorer_published_total",
            "alerts published to a user's topic",
            ["user", "reason"],
            registry=r,
        )
        self.dead_letters = Counter(
            "ahunt_scorer_dead_letters_total",
            "records sent to the dead-letter topic",
            ["reason"],
            registry=r,
        )
        self.stage_seconds = Histogram(
            "ahunt_scorer_stage_seconds",
            "time per batch in each stage",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end_seconds = Histogram(
            "ahunt_scorer_end_to_end_seconds",
            "from the alert's Kafka timestamp to its batch being committed",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "ahunt_scorer_batch_size_alerts", "alerts per batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.lag = Gauge(
            "ahunt_scorer_consumer_lag_messages",
            "high watermark minus committed offset (never negative)",
            ["topic", "partition"],
            registry=r,
        )
        self.model_info = Gauge(
            "ahunt_scorer_model_info",
            "1 for the model version in use",
            ["survey", "version"],
            registry=r,
        )
        self.model_swaps = Counter(
            "ahunt_scorer_model_swaps_total", "models swapped in", ["survey"], registry=r
        )
        self.model_load_failures = Counter(
            "ahunt_scorer_model_load_failures_total",
            "model versions refused at load",
            ["survey"],
            registry=r,
        )
        self.users = Gauge("ahunt_scorer_users", "user profiles being scored for", registry=r)
        self.partition_share = Gauge(
            "ahunt_scorer_partition_share",
            "share of the input partitions this replica consumes (it spends that share of "
            "every budget)",
            registry=r,
        )
