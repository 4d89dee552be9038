"""The scorer end to end on a real broker and a real Redis, with the real ZTF sample packets."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import redis
from prometheus_client import CollectorRegistry

from services.common import keys, schemas, store
from services.common.alerts import Alert
from services.common.kafka import consumer, ensure_topics, producer
from services.common.settings import KafkaSettings
from services.common.topics import DEAD_LETTERS, user_topic
from services.common.users import Budget, Filters, SkyCone, UserProfile
from services.common.values import stamp_from_bytes
from services.scorer import app
from services.scorer.app import build_loop
from services.scorer.handler import prepare_stamps
from services.scorer.metrics import ScorerMetrics
from services.scorer.model import ModelSlot, load_model
from services.scorer.settings import ScorerSettings
from services.scorer.watcher import ModelWatcher

METRICS = ScorerMetrics(CollectorRegistry())  # this module's own registry


def _read_topic(bootstrap: str, settings: KafkaSettings, topic: str, idle_s: float = 4.0):
    c = consumer(settings, bootstrap, f"read-{time.monotonic_ns()}")
    c.subscribe([topic])
    got, last = [], time.monotonic()
    while time.monotonic() - last < idle_s:
        batch = [m for m in c.consume(200, 0.3) if m.error() is None]
        if batch:
            got += batch
            last = time.monotonic()
    c.close()
    return got


def test_prepare_stamps_matches_training_preprocessing(
    model_root: Path, ztf_alerts: list[Alert]
) -> None:
    model = load_model(model_root / "ztf" / "ztf-0001")
    x = prepare_stamps(ztf_alerts[:5], model)
    assert x.shape == (5, 3, 63, 63) and np.isfinite(x).all()


def test_replay_samples_routes_by_interest_budget_and_filters(
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    group_id: str,
    model_root: Path,
    redis_client: redis.Redis,
    ztf_payloads: list[bytes],
    ztf_alerts: list[Alert],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = new_topic("alerts")
    near = ztf_alerts[0]
    users = [
        UserProfile(name=f"all-{group_id}", budget=Budget(alerts=100_000)),
        UserProfile(name=f"few-{group_id}", budget=Budget(alerts=3)),
        UserProfile(
            name=f"cone-{group_id}",
            budget=Budget(alerts=100_000),
            filters=Filters(cone=SkyCone(ra=near.ra, dec=near.dec, radius=0.01)),
        ),
    ]
    for u in users:
        store.save_profile(redis_client, u)
    ensure_topics(kafka_settings, kafka_bootstrap, [DEAD_LETTERS])
    p = producer(kafka_settings, kafka_bootstrap)
    poison = b"not an alert " + group_id.encode()
    for payload in [*ztf_payloads, poison]:
        p.produce(src, payload)
    assert p.flush(10) == 0

    settings = ScorerSettings(
        input_topics=[src],
        group_id=group_id,
        model_dir=model_root,
        batch_size=32,
        metrics_port=0,
        metrics_per_user=2,
        fetch_wait_max_ms=77,
    )
    slot = ModelSlot()
    ModelWatcher(settings, slot, METRICS).check()
    configs: list[dict[str, object]] = []  # what the scorer asks of its (real) consumer
    real_consumer = app.consumer

    def seen_consumer(*args: object, **extra: object) -> object:
        configs.append(extra)
        return real_consumer(*args, **extra)

    monkeypatch.setattr("services.scorer.app.consumer", seen_consumer)
    loop = build_loop(settings, kafka_settings, kafka_bootstrap, redis_client, METRICS, slot)
    # The scorer's own fetch wait, not the other services' KAFKA_FETCH_WAIT_MAX_MS.
    assert configs == [{"fetch.wait.max.ms": 77}]
    handled: list[int] = []
    refresh_lag = loop.on_batch
    assert refresh_lag is not None

    def on_batch(n: int, seconds: float) -> None:
        handled.append(n)
        refresh_lag(n, seconds)

    loop.on_batch = on_batch
    deadline = time.monotonic() + 60
    while sum(handled) < len(ztf_payloads) + 1 and time.monotonic() < deadline:
        loop.step()
    assert sum(handled) == len(ztf_payloads) + 1
    # The consumer-lag gauge was filled for the input topic (never negative)...
    lags = [s for m in METRICS.lag.collect() for s in m.samples if s.labels["topic"] == src]
    assert lags and all(s.value >= 0 for s in lags)
    loop.consumer.close()
    # ... and leaving the group drops the series of the partitions it no longer owns.
    assert not [s for m in METRICS.lag.collect() for s in m.samples if s.labels["topic"] == src]
    # Per-user series for the first metrics_per_user users only (bounded): the third is 'other'.
    published = {s.labels["user"] for m in METRICS.published.collect() for s in m.samples}
    assert len(published & {u.name for u in users}) == 2 and "other" in published

    ids = {a.alert_id for a in ztf_alerts}
    got = {u.name: _read_topic(kafka_bootstrap, kafka_settings, user_topic(u.name)) for u in users}
    every = [schemas.decode(schemas.USER_ALERT, m.value()) for m in got[users[0].name]]
    # A budget larger than the stream: every alert, each carrying what a client needs.
    assert {r["alert_id"] for r in every} == ids
    first = every[0]
    assert first["model_version"] == "ztf-0001" and set(first["class_probabilities"]) == {
        "reserve",
        "normal",
    }
    assert first["cutout_science"][:2] == b"\x1f\x8b" and first["reason"] in ("top", "random")
    headers = dict(got[users[0].name][0].headers() or [])
    assert headers["ahunt-model-version"] == b"ztf-0001" and headers["ahunt-schema-version"] == b"1"
    assert int(headers["ahunt-source-timestamp-ms"]) > 1_700_000_000_000
    assert got[users[0].name][0].key() == first["alert_id"].encode()
    # A budget of 3 is a hard cap.
    assert 1 <= len(got[users[1].name]) <= 3
    # The cone keeps only alerts within 0.01 deg of the first alert's position.
    cone = [schemas.decode(schemas.USER_ALERT, m.value()) for m in got[users[2].name]]
    assert cone and all(
        abs(r["ra"] - near.ra) < 0.05 and abs(r["dec"] - near.dec) < 0.05 for r in cone
    )
    # Feedback cache: every delivered alert's preprocessed stamp is in Redis, with a TTL.
    key = keys.alert_key(first["alert_id"])
    stamp = stamp_from_bytes(redis_client.hget(key, "stamp"))
    assert stamp.shape == (3, 63, 63) and 0 < redis_client.ttl(key) <= 7 * 86_400
    assert redis_client.zcard(keys.candidates_key(users[1].name)) == len(got[users[1].name])
    # The poison packet is in the DLQ with its reason, the good ones all flowed.
    letters = [
        json.loads(m.value()) for m in _read_topic(kafka_bootstrap, kafka_settings, DEAD_LETTERS)
    ]
    # The topic is the session broker's, shared with other tests (whose minimal envelopes carry
    # no prefix): this test's letters are the ones from its own source topic.
    mine = [d for d in letters if d["source"]["topic"] == src]
    assert [bytes.fromhex(d["original"]["prefix"]) for d in mine] == [poison]
    assert len(mine) == 1 and mine[0]["reason"] == "bad_magic"
    assert mine[0]["source"]["topic"] == src and mine[0]["model_version"] == "ztf:ztf-0001"


def test_replicas_in_one_group_split_every_budget_by_their_partitions(
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    group_id: str,
    model_root: Path,
    redis_client: redis.Redis,
) -> None:
    """Two scorers sharing a 4-partition topic each see half the stream, so each spends half of
    every user's budget: together they deliver one budget, not two."""
    src = new_topic("alerts", partitions=4)
    settings = ScorerSettings(
        input_topics=[src], group_id=group_id, model_dir=model_root, batch_size=32, metrics_port=0
    )
    slot = ModelSlot()
    ModelWatcher(settings, slot, METRICS).check()
    loops = [
        build_loop(settings, kafka_settings, kafka_bootstrap, redis_client, METRICS, slot)
        for _ in range(2)
    ]
    try:

        def shares() -> list[float]:
            return [loop.handler.partition_share for loop in loops]  # type: ignore[attr-defined]

        deadline = time.monotonic() + 60
        while shares() != [0.5, 0.5] and time.monotonic() < deadline:
            for loop in loops:
                loop.step()
        assert shares() == [0.5, 0.5]
        scorer = loops[0].handler
        selector = scorer._selector("ztf", "ztf-0001")  # type: ignore[attr-defined]
        assert selector.share == 0.5
    finally:
        for loop in loops:
            loop.consumer.close()


def test_a_dismissed_class_reaches_the_user_by_no_strategy(
    model_root: Path, ztf_alerts: list[Alert]
) -> None:
    """Random and uncertain picks explore, but not into a class the user called not interesting:
    with the whole stream as budget, only alerts the model puts outside it (p <= 1/2) pass."""
    # (Without the rule a budget this size takes every alert for both users.)
    from services.scorer.handler import score_batch
    from services.scorer.selection import selector_for

    model = load_model(model_root / "ztf" / "ztf-0001")
    explore = {"random": 1.0}
    users = [
        UserProfile(name="everything", budget=Budget(alerts=100_000), strategy=explore),
        UserProfile(
            name="no-normal",
            weights={"normal": 0.0},
            budget=Budget(alerts=100_000),
            strategy=explore,
        ),
    ]
    batch = score_batch(
        ztf_alerts, model, users, selector_for(users), 0.0, 0.5, np.random.default_rng(0)
    )
    p_normal = batch.probs[:, batch.classes.index("normal")]
    got = {u.name: {d.alert for d in batch.deliveries if d.user == u.name} for u in users}
    assert got["everything"] == set(range(len(ztf_alerts)))
    assert got["no-normal"] == {i for i in range(len(ztf_alerts)) if p_normal[i] <= 0.5}
    assert len(got["no-normal"]) < len(ztf_alerts)  # (this one-class model: none pass)
