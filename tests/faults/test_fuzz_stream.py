"""Fuzzed packets mixed into a valid stream of real alerts, through the scorer's real loop on a
real broker and Redis (issue 17, fault suite): no crash, every bad packet in the dead-letter
topic with a reason (the reason its damage implies, where it must fail), every good alert
delivered, every partition committed to its end.

AHUNT_FAULTS_FUZZ sets the number of fuzzed packets (CI: 1,000; the recorded run: 10,000, see
docs/RELIABILITY.md), with half as many good alerts."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import redis
from confluent_kafka import KafkaError, Message, TopicPartition
from prometheus_client import CollectorRegistry

from services.common import store
from services.common.alerts import Alert, Rejected, decode_message
from services.common.kafka import ensure_topics, producer
from services.common.settings import KafkaSettings
from services.common.topics import DEAD_LETTERS, user_topic
from services.common.users import Budget, UserProfile
from services.scorer.app import build_loop
from services.scorer.metrics import ScorerMetrics
from services.scorer.model import ModelSlot
from services.scorer.settings import ScorerSettings
from services.scorer.watcher import ModelWatcher
from tests.faults.fuzz import MAY_PASS, REASONS, fuzz
from tests.samples import ROOT
from tests.scorer_support import read_keys, read_topic, single_records, ztf_stream

pytestmark = pytest.mark.slow
FUZZED = int(os.environ.get("AHUNT_FAULTS_FUZZ", "1000"))
GOOD = FUZZED // 2
PARTITIONS = 4


def _produce(
    bootstrap: str, settings: KafkaSettings, topic: str, packets: list[bytes]
) -> list[tuple[int, int]]:
    """Produce in order, round robin over the partitions (unkeyed records go where librdkafka's
    sticky partitioner puts them, which can leave a partition empty); (partition, offset) of
    each packet."""
    where: list[tuple[int, int] | None] = [None] * len(packets)
    p = producer(settings, bootstrap, **{"message.max.bytes": 10_000_000})
    for i, packet in enumerate(packets):

        def done(err: KafkaError | None, msg: Message, i: int = i) -> None:
            assert err is None, err
            where[i] = (msg.partition(), msg.offset())

        while True:
            try:
                p.produce(topic, packet, partition=i % PARTITIONS, on_delivery=done)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(60) == 0
    assert all(w is not None for w in where)
    return [w for w in where if w is not None]


def test_fuzzed_packets_in_a_valid_stream(
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    group_id: str,
    model_root: Path,
    redis_client: redis.Redis,
    ztf_payloads: list[bytes],
) -> None:
    rng = np.random.default_rng(23)
    originals = single_records(ztf_payloads)
    framed = [p.read_bytes() for p in sorted((ROOT / "confluent-framed").glob("*.avro"))]
    bad = fuzz(originals, framed, FUZZED, 5 * 10**17, rng)
    good = list(ztf_stream(originals, GOOD, 6 * 10**17, 1_704_085_200.0, 8 * 3_600.0))
    order = rng.permutation(len(bad) + len(good))
    packets = [bad[i].packet if i < len(bad) else good[i - len(bad)][1] for i in order]
    src = new_topic("alerts", partitions=PARTITIONS)
    user = UserProfile(name=f"all-{group_id}", budget=Budget(alerts=1_000_000))
    store.save_profile(redis_client, user)
    ensure_topics(kafka_settings, kafka_bootstrap, [DEAD_LETTERS])
    produced = _produce(kafka_bootstrap, kafka_settings, src, packets)
    where = dict(zip(order.tolist(), produced, strict=True))

    settings = ScorerSettings(
        input_topics=[src], group_id=group_id, model_dir=model_root, batch_size=64, metrics_port=0
    )
    metrics = ScorerMetrics(CollectorRegistry())
    slot = ModelSlot()
    ModelWatcher(settings, slot, metrics).check()
    loop = build_loop(settings, kafka_settings, kafka_bootstrap, redis_client, metrics, slot)
    handled: list[int] = []
    loop.on_batch = lambda n, _s: handled.append(n)
    started = time.monotonic()
    try:
        while sum(handled) < len(packets) and time.monotonic() - started < 600:
            loop.step()  # 0 crashes: any exception fails the test here
        parts = [TopicPartition(src, p) for p in range(PARTITIONS)]
        commits = {tp.partition: tp.offset for tp in loop.consumer.committed(parts, timeout=10)}
    finally:
        loop.consumer.close()
    elapsed = time.monotonic() - started
    assert sum(handled) == len(packets)
    ends = {p: max(o for q, o in where.values() if q == p) + 1 for p in range(PARTITIONS)}
    assert commits == ends  # every partition committed to its last packet: none stalled

    envelopes: dict[tuple[int, int], dict] = {}
    sizes = []
    for m in read_topic(kafka_bootstrap, kafka_settings, DEAD_LETTERS, idle_s=5):
        body = json.loads(m.value() or b"{}")
        if body.get("source", {}).get("topic") == src:
            source = (body["source"]["partition"], body["source"]["offset"])
            assert source not in envelopes  # one envelope per message
            envelopes[source] = body
            sizes.append(len(m.value() or b""))
    want = {alert_id for alert_id, _ in good}
    delivered = read_keys(kafka_bootstrap, kafka_settings, user_topic(user.name), want, 120)
    assert want <= delivered  # every good alert delivered
    for i, (alert_id, _) in enumerate(good):
        assert where[len(bad) + i] not in envelopes, alert_id
    outcomes: Counter[str] = Counter()
    for i, packet in enumerate(bad):
        letter = envelopes.get(where[i])
        reasons = {letter["reason"], *(r["reason"] for r in letter["records"])} if letter else set()
        if packet.kind in REASONS:  # must fail, for the reason its damage implies
            assert reasons & REASONS[packet.kind], (packet.kind, letter)
            assert packet.alert_id not in delivered
        else:  # may pass: accounted for either way, never lost
            assert packet.kind in MAY_PASS
            _accounted(packet.packet, letter, delivered)
        outcomes[f"{packet.kind}:{'dead letter' if letter else 'delivered'}"] += 1
    print(
        f"\n{len(bad)} fuzzed + {len(good)} good packets in {elapsed:.0f} s, 0 crashes, "
        f"{PARTITIONS} partitions committed to their ends; {len(envelopes)} envelopes (largest "
        f"{max(sizes)} bytes); {dict(sorted(outcomes.items()))}"
    )


def _accounted(packet: bytes, letter: dict | None, delivered: set[str]) -> None:
    """Each record of a packet that may pass is delivered or named in its envelope."""
    named = {r["index"] for r in letter["records"]} if letter else set()
    for index, result in enumerate(decode_message(packet)):
        if isinstance(result, Rejected):
            assert letter is not None and (result.index in named or result.index is None)
        else:
            assert isinstance(result, Alert)
            assert result.alert_id in delivered or index in named, result.alert_id
