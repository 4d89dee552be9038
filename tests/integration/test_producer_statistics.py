"""KAFKA_STATISTICS_INTERVAL_MS: the scorer's producer exports librdkafka's per-broker latency
windows (rtt, int_latency, outbuf_latency) from a real broker's statistics."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from services.common.kafka import Delivery, OutMessage, producer
from services.common.settings import KafkaSettings
from services.scorer.metrics import ScorerMetrics


def test_the_producer_latency_windows_come_from_librdkafka(
    kafka_bootstrap: str, kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    metrics = ScorerMetrics(CollectorRegistry())
    settings = kafka_settings.model_copy(update={"statistics_interval_ms": 200})
    delivery = Delivery(producer(settings, kafka_bootstrap, stats_cb=metrics.kafka_statistics))
    topic = new_topic("stats")
    rtt = metrics.producer_latency.labels("rtt", "max")
    deadline = time.monotonic() + 20
    while rtt._value.get() <= 0:  # a window in which requests went to the broker
        assert time.monotonic() < deadline, "no statistics with a round trip arrived"
        delivery.send([OutMessage(topic, b"x" * 100) for _ in range(10)])
        delivery.producer.poll(0.3)
    assert 0 < rtt._value.get() < 30  # seconds: a real round trip, not microseconds as seconds
    for window in ("int_latency", "outbuf_latency"):
        assert metrics.producer_latency.labels(window, "p99")._value.get() >= 0


def test_without_an_interval_no_statistics_are_computed(
    kafka_bootstrap: str, kafka_settings: KafkaSettings
) -> None:
    calls: list[str] = []
    p = producer(kafka_settings, kafka_bootstrap, stats_cb=calls.append)
    p.poll(1.5)
    assert kafka_settings.statistics_interval_ms == 0 and calls == []
