"""kill -9 of the broker mid-stream, then a restart on the same port (issue 17, fault suite).

Durable (Tansu's S3 engine on a local S3 server): nothing is lost and the scorer goes on by
itself, the same process. Memory (the embedded default): a restarted broker has forgotten every
topic, record and committed offset; the scorer goes on with what comes next and says loudly what
was lost (a log line and ``ahunt_scorer_broker_offsets_reset_total``) instead of hanging or
silently starting over."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from confluent_kafka import KafkaError, Message

from services.common import store
from services.common.embedded import EmbeddedKafka, free_port
from services.common.kafka import ensure_topics, producer
from services.common.settings import KafkaSettings
from services.common.topics import user_topic
from services.common.users import Budget, UserProfile
from services.tools.demo.observe import metric_samples
from tests.faults.broker_support import LocalS3
from tests.scorer_support import (
    committed,
    read_keys,
    read_topic,
    reference_outputs,
    scorer_env,
    scorer_process,
    single_records,
    wait_until,
    ztf_stream,
)

pytestmark = pytest.mark.slow
ALERTS = int(os.environ.get("AHUNT_FAULTS_BROKER_ALERTS", "400"))
PARTITIONS, RATE, DOWN_S = 2, 100.0, 2.0
BEFORE, AFTER = 120, 60  # the memory broker's test: alerts before the kill, and after
NIGHT_START = 1_704_085_200.0


@pytest.fixture(scope="module")
def s3() -> Iterator[LocalS3]:
    with LocalS3() as server:
        yield server


class Stream(threading.Thread):
    """Produce ``payloads`` at RATE a second, keyed by alert id, through the broker's outage
    (the producer is idempotent and retries; every record must be acknowledged in the end)."""

    def __init__(self, settings: KafkaSettings, bootstrap: str, topic: str, payloads) -> None:
        super().__init__(name="stream", daemon=True)
        self.producer = producer(settings, bootstrap, **{"message.timeout.ms": 120_000})
        self.topic, self.payloads = topic, payloads
        self.errors: list[KafkaError] = []
        self.sent = 0

    def delivered(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self.errors.append(err)

    def run(self) -> None:
        started = time.monotonic()
        for i, (key, payload) in enumerate(self.payloads):
            self.producer.produce(self.topic, payload, key.encode(), on_delivery=self.delivered)
            self.sent = i + 1
            if i % 20 == 19:
                self.producer.poll(0)
                time.sleep(max(0.0, started + (i + 1) / RATE - time.monotonic()))
        self.producer.flush(180)


def _users(redis_client: redis.Redis, tag: str) -> list[UserProfile]:
    users = [UserProfile(name=f"all-{tag}", budget=Budget(alerts=10**6))]
    for user in users:
        store.save_profile(redis_client, user)
    return users


def test_durable_broker_killed_and_restarted_loses_nothing(
    s3: LocalS3,
    kafka_settings: KafkaSettings,
    group_id: str,
    model_root: Path,
    redis_server,
    redis_client: redis.Redis,
    ztf_payloads: list[bytes],
    tmp_path: Path,
) -> None:
    broker = s3.broker()
    broker.start()
    try:
        bootstrap = broker.bootstrap_servers
        src = f"alerts.{group_id}"
        ensure_topics(kafka_settings, bootstrap, [src], partitions=PARTITIONS)
        stream = list(
            ztf_stream(single_records(ztf_payloads), ALERTS, 5 * 10**17, NIGHT_START, 3_600.0)
        )
        users = _users(redis_client, group_id)
        want = reference_outputs([p for _, p in stream], model_root, redis_client, src, PARTITIONS)
        port = free_port()
        env = scorer_env(bootstrap, redis_server.url, src, group_id, model_root, batch_size="32")
        # Tansu's S3 engine loses idempotent retries across kill -9 (KafkaSettings says more)
        env["KAFKA_ENABLE_IDEMPOTENCE"] = "false"
        log = tmp_path / "scorer.log"
        scorer = scorer_process({**env, "AHUNT_SCORER_METRICS_PORT": str(port)}, log)
        try:
            plain = kafka_settings.model_copy(update={"enable_idempotence": False})
            producing = Stream(plain, bootstrap, src, stream)
            producing.start()
            assert wait_until(
                lambda: (
                    committed(bootstrap, kafka_settings, group_id, src, PARTITIONS) >= ALERTS // 3
                ),
                120,
                0.2,
            ), log.read_text()[-3000:]
            at_kill = committed(bootstrap, kafka_settings, group_id, src, PARTITIONS)
            broker.kill()
            killed = time.monotonic()
            time.sleep(DOWN_S)
            broker.start()
            restarted = time.monotonic()
            assert wait_until(
                lambda: committed(bootstrap, kafka_settings, group_id, src, PARTITIONS) > at_kill,
                120,
                0.2,
            ), log.read_text()[-3000:]
            resumed = time.monotonic()
            producing.join(240)
            assert not producing.is_alive() and producing.errors == [], producing.errors[:3]
            assert wait_until(
                lambda: committed(bootstrap, kafka_settings, group_id, src, PARTITIONS) >= ALERTS,
                180,
            ), log.read_text()[-3000:]
            assert scorer.poll() is None, log.read_text()[-3000:]  # the same process went on
            lost = [
                s.value
                for s in metric_samples(f"http://127.0.0.1:{port}/metrics")
                if s.name == "ahunt_scorer_broker_offsets_reset_total"
            ]
        finally:
            scorer.terminate()
            scorer.wait(60)
        topic = user_topic(users[0].name)
        got = read_topic(
            bootstrap,
            kafka_settings,
            topic,
            done=lambda ms: want[topic] <= {(m.key() or b"").decode() for m in ms},
        )
        keys = {(m.key() or b"").decode() for m in got}
        assert keys == want[topic], f"{len(want[topic] - keys)} missing"
        assert sum(lost) == 0  # nothing went backwards
        print(
            f"\n{ALERTS} alerts, broker killed at {at_kill} committed, down {DOWN_S} s: "
            f"commits resumed {resumed - restarted:.1f} s after the restart "
            f"({resumed - killed:.1f} s after the kill), {len(got)} deliveries for "
            f"{len(want[topic])} alerts, 0 missing"
        )
    finally:
        broker.stop()


def test_memory_broker_restarted_empty_is_reported_and_the_scorer_goes_on(
    kafka_settings: KafkaSettings,
    group_id: str,
    model_root: Path,
    redis_server,
    redis_client: redis.Redis,
    ztf_payloads: list[bytes],
    tmp_path: Path,
) -> None:
    """Before the kill: BEFORE alerts scored and committed. The broker comes back empty; the
    alerts' source sends AFTER new ones. The same scorer process scores them, and says that its
    input partitions went back (log line and metric) instead of starting over silently."""
    originals = single_records(ztf_payloads)
    before = list(ztf_stream(originals, BEFORE, 6 * 10**17, NIGHT_START, 1_800.0))
    after = list(ztf_stream(originals, AFTER, 7 * 10**17, NIGHT_START + 1_800.0, 1_800.0))
    users = _users(redis_client, group_id)
    src = f"alerts.{group_id}"
    want = reference_outputs([p for _, p in after], model_root, redis_client, src, PARTITIONS)
    with EmbeddedKafka() as broker:
        bootstrap = broker.bootstrap_servers
        ensure_topics(kafka_settings, bootstrap, [src], partitions=PARTITIONS)
        port = free_port()
        env = scorer_env(
            bootstrap,
            redis_server.url,
            src,
            group_id,
            model_root,
            batch_size="32",
            delivery_timeout_s="3",
        )
        log = tmp_path / "scorer.log"
        scorer = scorer_process({**env, "AHUNT_SCORER_METRICS_PORT": str(port)}, log)
        try:
            first = Stream(kafka_settings, bootstrap, src, before)
            first.run()
            assert first.errors == [], first.errors[:3]
            assert wait_until(
                lambda: committed(bootstrap, kafka_settings, group_id, src, PARTITIONS) >= BEFORE,
                120,
            ), log.read_text()[-3000:]
            broker.kill()
            killed = time.monotonic()
            time.sleep(DOWN_S)
            broker.start()
            # the alerts' source finds its topic gone and creates it again, as a fresh one
            ensure_topics(kafka_settings, bootstrap, [src], partitions=PARTITIONS)
            second = Stream(kafka_settings, bootstrap, src, after)
            second.run()
            assert second.errors == [], second.errors[:3]
            assert wait_until(
                lambda: committed(bootstrap, kafka_settings, group_id, src, PARTITIONS) >= AFTER,
                120,
            ), log.read_text()[-3000:]
            resumed = time.monotonic()
            assert scorer.poll() is None, log.read_text()[-3000:]  # the same process went on
            resets = sum(
                s.value
                for s in metric_samples(f"http://127.0.0.1:{port}/metrics")
                if s.name == "ahunt_scorer_broker_offsets_reset_total"
            )
        finally:
            scorer.terminate()
            scorer.wait(60)
        topic = user_topic(users[0].name)
        keys = read_keys(bootstrap, kafka_settings, topic, want[topic])
    text = log.read_text()
    assert want[topic] <= keys, f"{len(want[topic] - keys)} of the new alerts missing"
    assert resets >= 1, text[-3000:]
    assert "went back from offset" in text and "the broker lost" in text
    print(
        f"\nmemory broker restarted empty: {int(resets)} partition(s) reported as reset, "
        f"the {len(after)} new alerts delivered {resumed - killed:.1f} s after the kill, "
        f"the same scorer process"
    )
