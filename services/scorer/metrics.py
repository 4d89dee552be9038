"""The scorer's Prometheus metrics (names fixed: dashboards and alert rules use them)."""

from __future__ import annotations

import json
import time

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
            "alerts published to users' topics (user: 'all', or per user for the first "
            "AHUNT_SCORER_METRICS_PER_USER users, 'other' beyond)",
            ["user", "reason"],
            registry=r,
        )
        self.dead_letters = Counter(
            "ahunt_scorer_dead_letters_total",
            "records sent to the dead-letter topic",
            ["reason"],
            registry=r,
        )
        self.non_finite_outputs = Counter(
            "ahunt_scorer_non_finite_outputs_total",
            "alerts the live model gave a NaN or an infinity for (each one dead-lettered)",
            ["survey"],
            registry=r,
        )
        self.dead_letter_envelopes = Counter(
            "ahunt_scorer_dead_letter_envelopes_total",
            "dead-letter envelopes by outcome: produced, minimal (the full one was refused), "
            "unproduced (the minimal one too: logged instead), transient (a delivery error: "
            "the batch replays)",
            ["outcome"],
            registry=r,
        )
        self.dead_letter_originals = Counter(
            "ahunt_scorer_dead_letter_originals_total",
            "dead letters' originals by what became of them (redis, duplicate, too_large, "
            "store_full, store_unavailable)",
            ["kept"],
            registry=r,
        )
        self.refused_outputs = Counter(
            "ahunt_scorer_refused_outputs_total",
            "outputs the broker refused for good (their input became a dead letter)",
            ["error"],
            registry=r,
        )
        self.offsets_reset = Counter(
            "ahunt_scorer_broker_offsets_reset_total",
            "times an input partition's offsets went back below what this scorer had committed "
            "(a broker restarted without its data, or a group reset): records may be lost",
            ["topic"],
            registry=r,
        )
        self.stage_seconds = Histogram(
            "ahunt_scorer_stage_seconds",
            "time per batch in each stage",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        # CPU seconds of the scoring thread in each stage (time.thread_time): on a shared
        # machine wall time includes waiting for a core, CPU time is the stage's own cost.
        self.stage_cpu_seconds = Counter(
            "ahunt_scorer_stage_cpu_seconds_total",
            "CPU seconds of the scoring thread in each stage",
            ["stage"],
            registry=r,
        )
        self.producer_latency = Gauge(
            "ahunt_scorer_producer_latency_seconds",
            "librdkafka's producer latencies over the last statistics window "
            "(KAFKA_STATISTICS_INTERVAL_MS), worst broker: rtt (request round trip), "
            "int_latency (queued in the client before sending), outbuf_latency (waiting for a "
            "free request slot)",
            ["window", "quantile"],
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
        self.redis_pauses = Counter(
            "ahunt_scorer_redis_pauses_total",
            "batches paused at the last commit because Redis was unavailable (retried)",
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

    def stage(self, name: str, wall_start: float, cpu_start: float) -> None:
        """Record a stage that began at ``wall_start`` (perf_counter) and ``cpu_start``
        (thread_time)."""
        self.stage_seconds.labels(name).observe(time.perf_counter() - wall_start)
        self.stage_cpu_seconds.labels(name).inc(max(0.0, time.thread_time() - cpu_start))

    def kafka_statistics(self, text: str) -> None:
        """librdkafka's ``stats_cb``: per-broker latency windows (microseconds) to gauges."""
        brokers = [
            b for b in json.loads(text).get("brokers", {}).values() if b.get("nodeid", -1) >= 0
        ]
        for window in ("rtt", "int_latency", "outbuf_latency"):
            for quantile in ("p50", "p99", "max"):
                worst = max((b.get(window, {}).get(quantile, 0) for b in brokers), default=0)
                self.producer_latency.labels(window, quantile).set(worst / 1e6)

    def dead_letter_event(self, event: str, label: str) -> None:
        """The consumer loop's dead-letter events (``services.common.kafka.DeadLetterEvent``)."""
        if event == "kept":
            self.dead_letter_originals.labels(label).inc()
        elif event == "refused_output":
            self.refused_outputs.labels(label).inc()
        else:
            self.dead_letter_envelopes.labels(event).inc()
