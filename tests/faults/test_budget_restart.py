"""Budgets survive restarts (issue 17, item 6): a scorer killed in the middle of a night and
restarted spends only what its user's budget has left. Spending used to live in the scorer's
memory only: the restarted scorer refilled every budget and users received it twice."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from services.common import keys, store
from services.common.kafka import producer
from services.common.settings import KafkaSettings
from services.common.topics import user_topic
from services.common.users import Budget, UserProfile
from tests.scorer_support import (
    committed,
    read_topic,
    scorer_env,
    scorer_process,
    single_records,
    wait_until,
    ztf_stream,
)

pytestmark = pytest.mark.slow
NIGHT_START = 1_704_085_200.0  # 2024-01-01 05:00 UTC
ALERTS, BUDGET, BATCH = 600, 5, 20


def test_a_scorer_killed_mid_night_does_not_refill_the_budget(
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
    src = new_topic("alerts")
    user = UserProfile(
        name=f"budget-{group_id}", budget=Budget(alerts=BUDGET), strategy={"top": 1.0}
    )
    store.save_profile(redis_client, user)
    originals = single_records(ztf_payloads)
    stream = list(ztf_stream(originals, ALERTS, 3 * 10**17, NIGHT_START, 8 * 3_600.0))
    p = producer(kafka_settings, kafka_bootstrap)
    for _, payload in stream:
        p.produce(src, payload, partition=0)  # one partition: the night in order
    assert p.flush(10) == 0
    # A low volume prior: the budget is all spent early in the night, so a refill would show.
    env = scorer_env(
        kafka_bootstrap,
        redis_server.url,
        src,
        group_id,
        model_root,
        batch_size=str(BATCH),
        expected_alerts="50",
    )
    log = tmp_path / "scorer.log"
    # First life: dies hard (os._exit, as kill -9 would) after delivering its 10th batch,
    # before committing it: a third of the night.
    first = scorer_process({**env, "AHUNT_SCORER_CRASH_AFTER_BATCHES": "10"}, log)
    try:
        assert first.wait(180) == 75, log.read_text()[-3000:]
    finally:
        first.kill()
    before = read_topic(kafka_bootstrap, kafka_settings, user_topic(user.name))
    spent = {(m.key() or b"").decode() for m in before}
    assert redis_client.zcard(keys.spent_key("ztf", user.name)) == len(spent) > 0

    second = scorer_process(env, log)
    try:
        assert wait_until(
            lambda: committed(kafka_bootstrap, kafka_settings, group_id, src, 2) >= ALERTS, 240
        ), log.read_text()[-3000:]
    finally:
        second.terminate()
        second.wait(30)
    after = read_topic(kafka_bootstrap, kafka_settings, user_topic(user.name))
    delivered = {(m.key() or b"").decode() for m in after}
    print(f"budget {BUDGET}: {len(spent)} before the kill, {len(delivered)} in the whole night")
    assert spent <= delivered
    assert len(delivered) <= BUDGET  # it used to be the first life's deliveries plus a budget
