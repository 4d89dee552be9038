"""Kill the scorer between produce and commit: after a restart nothing is missing (duplicates
are allowed and carry the same key)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import redis

from services.common import store
from services.common.alerts import Alert, decode_message
from services.common.kafka import producer
from services.common.settings import KafkaSettings
from services.common.topics import user_topic
from services.common.users import Budget, UserProfile
from tests.samples import unique_copies
from tests.scorer_support import committed, read_topic, scorer_env, scorer_process


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
    env = scorer_env(kafka_bootstrap, redis_server.url, src, group_id, model_root, batch_size="4")
    # First run: dies hard after delivering its 3rd batch, before committing it.
    log = tmp_path / "scorer.log"
    crashed = scorer_process({**env, "AHUNT_SCORER_CRASH_AFTER_BATCHES": "3"}, log)
    try:
        code = crashed.wait(120)
    finally:
        crashed.kill()
    assert code == 75, log.read_text()[-3000:]
    topic = user_topic(user.name)
    # the crash left work uncommitted
    assert committed(kafka_bootstrap, kafka_settings, group_id, src, 2) < len(messages)

    # Restart: it replays from the last commit and finishes.
    restarted = scorer_process(env, log)
    try:
        want = {
            r.alert_id.encode() for m in messages for r in decode_message(m) if isinstance(r, Alert)
        }
        got = read_topic(
            kafka_bootstrap,
            kafka_settings,
            topic,
            done=lambda ms: want <= {m.key() for m in ms},
            timeout_s=90,
        )
        keys = [m.key() or b"" for m in got]
    finally:
        restarted.terminate()
        restarted.wait(30)
    assert want <= set(keys)  # nothing missing
    assert len(keys) >= len(want)  # duplicates allowed (the crashed batch was replayed)
