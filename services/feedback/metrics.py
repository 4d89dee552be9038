"""The feedback API's Prometheus metrics (names are fixed: dashboards and alert rules use them).

Each app owns a registry (``create_app`` makes one), so several apps (tests, an in-process API
beside the scorer) never collide on the process-global one; ``GET /metrics`` serves it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.common.metrics import LATENCY_BUCKETS, ServiceMetrics

UNMATCHED_ROUTE = "unmatched"  # requests no route matched: one label value, bounded cardinality


class FeedbackMetrics(ServiceMetrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.requests = Counter(
            "ahunt_feedback_requests_total",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "ahunt_feedback_request_seconds",
            "time to answer a request, by route template",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.labels = Counter(
            "ahunt_feedback_labels_total",
            "labels acknowledged (durable), by class",
            ["label"],
            registry=r,
        )
        self.store_errors = Counter(
            "ahunt_feedback_store_errors_total",
            "requests answered 503 because Redis was unavailable",
            registry=r,
        )
        self.users = Gauge("ahunt_feedback_users", "users with a profile", registry=r)
        self.redis_durable = Gauge(
            "ahunt_feedback_redis_durable",
            "1 if Redis had appendonly yes and appendfsync always at the last check",
            registry=r,
        )
        self.outbox_events = Gauge(
            "ahunt_feedback_outbox_events", "feedback events waiting to be published", registry=r
        )
        self.events_published = Counter(
            "ahunt_feedback_events_published_total",
            "feedback events acknowledged by Kafka",
            registry=r,
        )
        self.publish_errors = Counter(
            "ahunt_feedback_publish_errors_total",
            "failed attempts to publish the outbox (events stay queued)",
            registry=r,
        )
