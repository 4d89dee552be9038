"""Kill the scorer between produce and commit: after a restart nothing is missing (duplicates
are allowed and carry the same key)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis
from confluent_kafka import TopicPartition

from services.common import store
from services.common.alerts import Alert, decode_message
from services.common.kafka import consumer, producer
from services.common.settings import KafkaSettings
from services.common.topics import user_topic
from services.common.users import Budget, UserProfile
from tests.samples import unique_copies

REPO = Path(__file__).resolve().parents[2]


def _scorer(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.scorer"],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _keys(
    bootstrap: str, settings: KafkaSettings, topic: str, want: set[bytes], timeout: float = 60
) -> list[bytes]:
    c = consumer(settings, bootstrap, f"check-{time.monotonic_ns()}")
    c.subscribe([topic])
    keys: list[bytes] = []
    deadline = time.monotonic() + timeout
    while not want <= set(keys) and time.monotonic() < deadline:
        keys += [m.key() or b"" for m in c.consume(500, 0.5) if m.error() is None]
    c.close()
    return keys


def test_crash_between_produce_and_commit_loses_nothing(
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    group_id: str,
    model_root: Path,
    redis_server,
    redis_client: redis.Redis,
    ztf_payloads: list[bytes],
    tmp_path: Path,
) -> None:
    single = [p for p in ztf_payloads if b"topLevelRecord" not in p][:40]
    messages = unique_copies(single, 3)
    src = new_topic("alerts")
    user = UserProfile(
        name=f"all-{group_id}", budget=Budget(alerts=1_000_000), strategy={"top": 1.0}
    )
    store.save_profile(redis_client, user)
    p = producer(kafka_settings, kafka_bootstrap)
    for m in messages:
        p.produce(src, m)
    assert p.flush(10) == 0
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "REDIS_URL": redis_server.url,
        "KAFKA_SESSION_TIMEOUT_MS": "3000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "AHUNT_SCORER_INPUT_TOPICS": f'["{src}"]',
        "AHUNT_SCORER_GROUP_ID": group_id,
        "AHUNT_SCORER_MODEL_DIR": str(model_root),
        "AHUNT_SCORER_METRICS_PORT": "0",
        "AHUNT_SCORER_BATCH_SIZE": "4",
    }
    # First run: dies hard after delivering its 3rd batch, before committing it.
    log = tmp_path / "scorer.log"
    crashed = _scorer({**env, "AHUNT_SCORER_CRASH_AFTER_BATCHES": "3"}, log)
    try:
        code = crashed.wait(120)
    finally:
        crashed.kill()
    assert code == 75, log.read_text()[-3000:]
    topic = user_topic(user.name)
    c = consumer(kafka_settings, kafka_bootstrap, group_id)
    committed = sum(
        max(tp.offset, 0)
        for tp in c.committed([TopicPartition(src, i) for i in (0, 1)], timeout=10)
    )
    c.close()
    assert committed < len(messages)  # the crash left work uncommitted

    # Restart: it replays from the last commit and finishes.
    restarted = _scorer(env, log)
    try:
        want = {
            r.alert_id.encode() for m in messages for r in decode_message(m) if isinstance(r, Alert)
        }
        keys = _keys(kafka_bootstrap, kafka_settings, topic, want, timeout=90)
    finally:
        restarted.terminate()
        restarted.wait(30)
    assert want <= set(keys)  # nothing missing
    assert len(keys) >= len(want)  # duplicates allowed (the crashed batch was replayed)
