"""The one consumer loop against a real broker: outputs before commits, poison to the DLQ,
nothing committed when a delivery fails."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence

import pytest
import redis
from confluent_kafka import Message, TopicPartition

from services.common import redis_errors
from services.common.embedded import EmbeddedKafka
from services.common.kafka import (
    ConsumerLoop,
    DeadLetter,
    Delivery,
    DeliveryError,
    OutMessage,
    consumer,
    ensure_topics,
    producer,
)
from services.common.settings import KafkaSettings
from services.common.topics import DEAD_LETTERS


def _fill(bootstrap: str, settings: KafkaSettings, topic: str, values: Sequence[bytes]) -> None:
    p = producer(settings, bootstrap)
    for i, v in enumerate(values):
        p.produce(topic, v, key=str(i).encode())
    assert p.flush(10) == 0


def _read_all(
    bootstrap: str, settings: KafkaSettings, topic: str, n: int, timeout: float = 20
) -> list[Message]:
    c = consumer(settings, bootstrap, f"reader-{time.monotonic_ns()}")
    c.subscribe([topic])
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += [m for m in c.consume(100, 0.5) if m.error() is None]
    c.close()
    return got


def _committed(bootstrap: str, settings: KafkaSettings, group: str, topic: str) -> int:
    c = consumer(settings, bootstrap, group)
    parts = c.committed([TopicPartition(topic, p) for p in (0, 1)], timeout=10)
    c.close()
    return sum(max(tp.offset, 0) for tp in parts)


def _upper(
    messages: Sequence[Message], out_topic: str
) -> tuple[list[OutMessage], list[DeadLetter]]:
    outs, dead = [], []
    for m in messages:
        value = m.value() or b""
        if value.startswith(b"poison"):
            dead.append(DeadLetter.of(m, "bad_magic", "does not start with a known magic"))
        else:
            outs.append(OutMessage(out_topic, value.upper(), key=m.key()))
    return outs, dead


def _run_until(loop: ConsumerLoop, done: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        loop.step()


def test_outputs_delivered_then_offsets_committed(
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    group_id: str,
) -> None:
    src, out = new_topic("src"), new_topic("out")
    values = [f"alert-{i}".encode() for i in range(20)]
    _fill(kafka_bootstrap, kafka_settings, src, values)
    c = consumer(kafka_settings, kafka_bootstrap, group_id)
    c.subscribe([src])
    seen: list[int] = []
    loop = ConsumerLoop(
        c,
        Delivery(producer(kafka_settings, kafka_bootstrap)),
        lambda ms: _upper(ms, out),
        "test",
        on_batch=lambda n, _s: seen.append(n),
    )
    _run_until(loop, lambda: sum(seen) >= 20)
    c.close()
    assert sum(seen) == 20
    assert sorted(m.value() for m in _read_all(kafka_bootstrap, kafka_settings, out, 20)) == sorted(
        v.upper() for v in values
    )
    assert _committed(kafka_bootstrap, kafka_settings, group_id, src) == 20


def test_a_store_refusing_for_now_pauses_the_loop_at_its_last_commit(
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    group_id: str,
) -> None:
    """The handler's store refuses (MISCONF, then a refused connection) for the third and fourth
    batch: the loop does not exit, commits nothing meanwhile, goes back to the batch's first
    messages and then delivers every input, none skipped; another error still raises."""
    src, out = new_topic("src"), new_topic("out")
    values = [f"alert-{i}".encode() for i in range(40)]
    _fill(kafka_bootstrap, kafka_settings, src, values)
    c = consumer(kafka_settings, kafka_bootstrap, group_id)
    c.subscribe([src])
    calls, seen, pauses = [0], [0], []
    refusals = [
        redis.ResponseError("MISCONF Redis is configured to save RDB snapshots"),
        redis.ConnectionError("Connection refused"),
    ]

    def handler(messages: Sequence[Message]) -> tuple[list[OutMessage], list[DeadLetter]]:
        calls[0] += 1
        if calls[0] in (3, 4):
            raise refusals[calls[0] - 3]
        return _upper(messages, out)

    loop = ConsumerLoop(
        c,
        Delivery(producer(kafka_settings, kafka_bootstrap)),
        handler,
        "test",
        batch_size=8,
        on_batch=lambda n, _s: seen.__setitem__(0, seen[0] + n),
        pause_if=redis_errors.unavailable,
        pause_s=0.05,
        on_pause=pauses.append,
    )
    _run_until(loop, lambda: seen[0] >= 40)
    c.close()
    assert seen[0] == 40 and [type(p) for p in pauses] == [
        redis.ResponseError,
        redis.ConnectionError,
        type(None),
    ]
    got = _read_all(kafka_bootstrap, kafka_settings, out, 40)
    assert sorted(m.value() for m in got) == sorted(v.upper() for v in values)
    assert _committed(kafka_bootstrap, kafka_settings, group_id, src) == 40
    loop.handler = lambda _ms: (_ for _ in ()).throw(redis.ResponseError("WRONGTYPE x"))
    _fill(kafka_bootstrap, kafka_settings, src, [b"one more"])
    loop.consumer = c2 = consumer(kafka_settings, kafka_bootstrap, group_id)
    c2.subscribe([src])
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        _run_until(loop, lambda: False, timeout=20)
    c2.close()


def test_poison_goes_to_the_dlq_with_its_reason_and_is_committed(
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    group_id: str,
) -> None:
    ensure_topics(kafka_settings, kafka_bootstrap, [DEAD_LETTERS])
    src, out = new_topic("src"), new_topic("out")
    marker = f"poison-{group_id}".encode()
    _fill(kafka_bootstrap, kafka_settings, src, [b"good-1", marker, b"good-2"])
    c = consumer(kafka_settings, kafka_bootstrap, group_id)
    c.subscribe([src])
    seen: list[int] = []
    loop = ConsumerLoop(
        c,
        Delivery(producer(kafka_settings, kafka_bootstrap)),
        lambda ms: _upper(ms, out),
        "test-service",
        model_version=lambda: "ztf-0007",
        on_batch=lambda n, _s: seen.append(n),
    )
    _run_until(loop, lambda: sum(seen) >= 3)
    c.close()
    assert len(_read_all(kafka_bootstrap, kafka_settings, out, 2)) == 2
    letters = [
        json.loads(m.value() or b"{}")
        for m in _read_all(kafka_bootstrap, kafka_settings, DEAD_LETTERS, 10_000, timeout=8)
    ]
    mine = [d for d in letters if bytes.fromhex(d["original"]["prefix"]) == marker]
    assert len(mine) == 1
    letter = mine[0]
    assert letter["reason"] == "bad_magic" and letter["service"] == "test-service"
    assert letter["model_version"] == "ztf-0007" and letter["source"]["topic"] == src
    assert letter["envelope_version"] == 2 and letter["original"]["size"] == len(marker)
    assert _committed(kafka_bootstrap, kafka_settings, group_id, src) == 3


def test_failed_delivery_raises_before_commit(kafka_settings: KafkaSettings) -> None:
    """The broker dies between consume and produce (a private one, stopped by the handler): the
    outputs cannot be acknowledged, so the loop must raise DeliveryError and never reach the
    commit (a commit attempted first would fail differently, against the dead broker)."""
    broker = EmbeddedKafka().start()
    try:
        bootstrap = broker.bootstrap_servers
        ensure_topics(kafka_settings, bootstrap, ["src", "out"])
        _fill(bootstrap, kafka_settings, "src", [b"x"] * 3)
        c = consumer(kafka_settings, bootstrap, "g")
        c.subscribe(["src"])
        p = producer(kafka_settings, bootstrap, **{"message.timeout.ms": 2000})

        def handler(ms: Sequence[Message]) -> tuple[list[OutMessage], list[DeadLetter]]:
            broker.stop()
            return [OutMessage("out", b"y") for _ in ms], []

        loop = ConsumerLoop(c, Delivery(p, flush_timeout_s=10), handler, "test")
        with pytest.raises(DeliveryError):
            _run_until(loop, lambda: False, timeout=30)
    finally:
        broker.stop()
