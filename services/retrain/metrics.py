"""The retrain service's Prometheus metrics (names fixed: dashboards and alert rules use them)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.common.metrics import ServiceMetrics

OUTCOMES = ("promoted", "rejected", "failed", "skipped")
PHASES = ("dataset", "train", "export", "gate", "publish", "total")
DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600)


class RetrainMetrics(ServiceMetrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        registry = self.registry
        self.runs = Counter(
            "ahunt_retrain_runs_total",
            "retrain runs by outcome (promoted, rejected, failed, skipped)",
            ["survey", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "ahunt_retrain_duration_seconds",
            "time per retrain phase (dataset, train, export, gate, publish, total)",
            ["survey", "phase"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.gate_rejections = Counter(
            "ahunt_retrain_gate_rejections_total",
            "candidates rejected, by failed check kind (one run may count several)",
            ["survey", "reason"],
            registry=registry,
        )
        self.labels = Gauge(
            "ahunt_retrain_labels",
            "durable labels (resolved, one per alert) used by the last run",
            ["survey"],
            registry=registry,
        )
        self.last_success = Gauge(
            "ahunt_retrain_last_success_timestamp_seconds",
            "unix time of the last run that completed (promoted or rejected by the gate)",
            ["survey"],
            registry=registry,
        )
        self.consecutive_failures = Gauge(
            "ahunt_retrain_consecutive_failures",
            "failed runs in a row (reset by a completed run)",
            ["survey"],
            registry=registry,
        )
