"""The scorer writes each batch to Redis as one MULTI/EXEC: a server with appendfsync always (the
labels' durability) then fsyncs once per batch, not once per few commands (5x faster per batch,
docs/PERFORMANCE.md), and the writes are still all there before the batch is produced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import redis
from confluent_kafka import Message
from prometheus_client import CollectorRegistry

from services.common import keys, schemas, store
from services.common.users import Budget, UserProfile
from services.scorer.app import Scorer
from services.scorer.metrics import ScorerMetrics
from services.scorer.model import ModelSlot, load_model
from services.scorer.settings import ScorerSettings


def _calls(client: redis.Redis, command: str) -> int:
    stats = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def test_one_batch_is_one_transaction_and_every_delivered_alert_is_cached(
    model_root: Path, redis_client: redis.Redis, ztf_payloads: list[bytes]
) -> None:
    store.save_profile(redis_client, UserProfile(name="all-tx", budget=Budget(alerts=1_000_000)))
    slot = ModelSlot()
    slot.swap("ztf", load_model(model_root / "ztf" / "ztf-0001"))
    scorer = Scorer(
        ScorerSettings(model_dir=model_root, metrics_port=0),
        slot,
        redis_client,
        ScorerMetrics(CollectorRegistry()),
        None,
    )
    scorer.refresh_users(force=True)
    messages = [
        Message(topic="alerts", partition=0, offset=i, value=p, timestamp=(1, 10**12))
        for i, p in enumerate(ztf_payloads[:6])
    ]
    before = {c: _calls(redis_client, c) for c in ("multi", "exec", "hset")}
    outputs, dead = scorer(messages)
    assert dead == [] and outputs
    assert _calls(redis_client, "multi") - before["multi"] == 1
    assert _calls(redis_client, "exec") - before["exec"] == 1
    assert _calls(redis_client, "hset") - before["hset"] >= len(outputs)
    for out in outputs:  # cached (with its stamp) before the loop produces it
        alert_id = schemas.decode(schemas.USER_ALERT, out.value)["alert_id"]
        assert redis_client.hexists(keys.alert_key(alert_id), "stamp")


def test_a_users_deliveries_of_a_batch_in_four_commands_leave_the_same_state(
    redis_client: redis.Redis,
) -> None:
    """Batched per user (hset mapping, one zadd, one trim, one expire) as one call per delivery
    did: the same delivery records and the same best ``candidates_max`` candidates."""
    rng = np.random.default_rng(3)
    deliveries = {f"a{i}": {"score": float(rng.random()), "reason": "top"} for i in range(40)}
    before = {"a-old": {"score": 0.5, "reason": "top"}}
    results = []
    for user, batched in (("one-by-one", False), ("batched", True)):
        pipe = redis_client.pipeline(transaction=True)
        store.record_delivery(pipe, user, "a-old", before["a-old"], 3600, 10)  # an earlier batch
        if batched:
            store.record_deliveries(pipe, user, deliveries, 3600, 10)
        else:
            for alert_id, d in deliveries.items():
                store.record_delivery(pipe, user, alert_id, d, 3600, 10)
        sent = len(pipe.command_stack)
        pipe.execute()
        results.append(
            (
                redis_client.hgetall(keys.delivered_key(user)),
                redis_client.zrange(keys.candidates_key(user), 0, -1, withscores=True),
                sent,
            )
        )
        assert 0 < redis_client.ttl(keys.delivered_key(user)) <= 3600
    (hash_a, best_a, sent_a), (hash_b, best_b, sent_b) = results
    assert hash_a == hash_b and len(hash_a) == 41
    assert best_a == best_b and len(best_a) == 10
    assert best_b[0][1] == sorted([0.5, *(d["score"] for d in deliveries.values())])[-10]
    assert (sent_a, sent_b) == (4 + 4 * 40, 4 + 4)
