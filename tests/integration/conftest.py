"""Real infrastructure for integration tests: a Kafka-protocol broker (the embedded Tansu unless
``KAFKA_BOOTSTRAP_SERVERS`` points at another) and factories for unique topics and groups."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from services.common.embedded import EmbeddedKafka
from services.common.kafka import ensure_topics
from services.common.settings import KafkaSettings


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    with EmbeddedKafka() as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def kafka_settings() -> KafkaSettings:
    return KafkaSettings(session_timeout_ms=3000, heartbeat_interval_ms=500, topic_partitions=2)


@pytest.fixture
def new_topic(kafka_bootstrap: str, kafka_settings: KafkaSettings) -> Callable[..., str]:
    def make(prefix: str = "t", partitions: int = 2) -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:10]}"
        ensure_topics(kafka_settings, kafka_bootstrap, [name], partitions=partitions)
        return name

    return make


@pytest.fixture
def group_id() -> str:
    return f"g-{uuid.uuid4().hex[:10]}"
