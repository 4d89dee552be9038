"""Dead letters through the real loop, broker and Redis (issue 17, item 1): always deliverable
(bounded envelopes), their originals fetchable by sha256, every refusal by the broker a handled,
counted event that ends with the input committed, never a crash loop."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import redis
from confluent_kafka import Message, TopicPartition

from services import cli
from services.common.dead_letters import DeadLetter, OriginalStore
from services.common.kafka import (
    ConsumerLoop,
    Delivery,
    OutMessage,
    consumer,
    ensure_topics,
    producer,
)
from services.common.settings import KafkaSettings
from services.common.topics import DEAD_LETTERS

Events = list[tuple[str, str]]


def _fill(bootstrap: str, settings: KafkaSettings, topic: str, values: Sequence[bytes]) -> None:
    p = producer(settings, bootstrap, **{"message.max.bytes": 10_000_000})
    for v in values:
        p.produce(topic, v)
    assert p.flush(30) == 0


def _committed(bootstrap: str, settings: KafkaSettings, group: str, topic: str) -> int:
    c = consumer(settings, bootstrap, group)
    parts = c.committed([TopicPartition(topic, p) for p in (0, 1)], timeout=10)
    c.close()
    return sum(max(tp.offset, 0) for tp in parts)


def _envelopes(bootstrap: str, settings: KafkaSettings, source: str, n: int) -> list[dict]:
    """The envelopes of dead letters from ``source`` (the dead-letter topic is shared)."""
    c = consumer(settings, bootstrap, f"dlq-{time.monotonic_ns()}")
    c.subscribe([DEAD_LETTERS])
    mine: list[dict] = []
    deadline = time.monotonic() + 30
    while len(mine) < n and time.monotonic() < deadline:
        for m in c.consume(500, 0.5):
            if m.error() is None:
                body = json.loads(m.value() or b"{}")
                if body.get("source", {}).get("topic") == source:
                    mine.append({**body, "_bytes": len(m.value() or b"")})
    c.close()
    return mine


def _poison_or_upper(out_topic: str, size: int = 0) -> Callable:
    """Inputs starting with b"good" become an output (of ``size`` bytes if given), the rest dead
    letters."""

    def handle(messages: Sequence[Message]) -> tuple[list[OutMessage], list[DeadLetter]]:
        outs, dead = [], []
        for m in messages:
            value = m.value() or b""
            if value.startswith(b"good"):
                body = value.upper() if not size else value[:8].ljust(size, b".")
                outs.append(OutMessage(out_topic, body, key=b"k", source=m))
            else:
                dead.append(DeadLetter.of(m, "bad_magic", "not an alert: " + "x" * 1_500))
        return outs, dead

    return handle


def _run(
    bootstrap: str,
    settings: KafkaSettings,
    src: str,
    group: str,
    handler: Callable,
    events: Events,
    originals: OriginalStore | None = None,
    dead_letter_topic: str = DEAD_LETTERS,
    n: int = 2,
    **producer_config: object,
) -> None:
    c = consumer(settings, bootstrap, group)
    c.subscribe([src])
    seen: list[int] = []
    loop = ConsumerLoop(
        c,
        Delivery(producer(settings, bootstrap, **producer_config), flush_timeout_s=20),
        handler,
        "test",
        on_batch=lambda k, _s: seen.append(k),
        originals=originals,
        on_dead_letter=lambda event, label: events.append((event, label)),
        dead_letter_topic=dead_letter_topic,
    )
    deadline = time.monotonic() + 60
    try:
        while sum(seen) < n and time.monotonic() < deadline:
            loop.step()  # must never raise: every refusal is handled
    finally:
        c.close()
    assert sum(seen) == n


def test_a_600_kB_poison_message_is_dead_lettered_bounded_and_fetchable(
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    group_id: str,
    redis_client: redis.Redis,
    redis_server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The envelope used to carry the input in hex: a 600 kB input made a 1.2 MB envelope, the
    producer refused it (MSG_SIZE_TOO_LARGE), nothing was committed and every restart replayed
    the same crash. Now: a small envelope, the input committed, the original in Redis."""
    ensure_topics(kafka_settings, kafka_bootstrap, [DEAD_LETTERS])
    src, out = new_topic("src"), new_topic("out")
    garbage = (b"\x89garbage " + group_id.encode()) * 40_000  # ~600 kB
    _fill(kafka_bootstrap, kafka_settings, src, [garbage, b"good"])
    store = OriginalStore(redis_client, 600, 16 << 20, 64 << 20)
    events: Events = []
    _run(kafka_bootstrap, kafka_settings, src, group_id, _poison_or_upper(out), events, store)
    assert _committed(kafka_bootstrap, kafka_settings, group_id, src) == 2
    (letter,) = _envelopes(kafka_bootstrap, kafka_settings, src, 1)
    sha = hashlib.sha256(garbage).hexdigest()
    assert letter["_bytes"] < 16_000 and letter["original"]["sha256"] == sha
    assert "minimal" not in letter and not any(event == "minimal" for event, _ in events)
    assert bytes.fromhex(letter["original"]["prefix"]) == garbage[:4096]
    assert letter["original"]["size"] == len(garbage) and letter["original"]["kept"] == "redis"
    assert ("kept", "redis") in events and ("produced", "bad_magic") in events
    # An operator fetches the whole original by its sha256.
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    assert cli.main(["dlq", "get", sha, "--out", str(tmp_path / "original")]) == 0
    assert (tmp_path / "original").read_bytes() == garbage


def test_a_refused_envelope_is_sent_minimal_then_logged_never_a_crash_loop(
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    group_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A broker that refuses the envelope for good: first the minimal form; when it refuses
    that too (here: the dead-letter topic's name is invalid, TOPIC_EXCEPTION), the minimal
    envelope goes to the log at ERROR, is counted, and the input is committed."""
    ensure_topics(kafka_settings, kafka_bootstrap, [DEAD_LETTERS])
    src, out = new_topic("src"), new_topic("out")
    poison = b"poison " + group_id.encode()
    _fill(kafka_bootstrap, kafka_settings, src, [poison, b"good"])
    events: Events = []
    with caplog.at_level(logging.ERROR, logger="ahunt.dlq"):
        _run(
            kafka_bootstrap,
            kafka_settings,
            src,
            group_id,
            _poison_or_upper(out),
            events,
            dead_letter_topic="not a topic!",
        )
    # (the client then knows the topic for unknown: the minimal one fails with _UNKNOWN_TOPIC)
    assert ("minimal", "TOPIC_EXCEPTION") in events
    assert [event for event, _ in events].count("unproduced") == 1
    (record,) = [r for r in caplog.records if "dead letter not produced" in r.getMessage()]
    assert hashlib.sha256(poison).hexdigest() in record.getMessage()
    assert record.exc_info is None  # a line, not a traceback
    assert _committed(kafka_bootstrap, kafka_settings, group_id, src) == 2


def test_a_too_large_envelope_is_replaced_by_the_minimal_one(
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    group_id: str,
) -> None:
    """A producer (or broker) whose message limit is below the full envelope (1 kB here, with a
    4 kB prefix in the full one): the minimal envelope still reaches the dead-letter topic."""
    ensure_topics(kafka_settings, kafka_bootstrap, [DEAD_LETTERS])
    src, out = new_topic("src"), new_topic("out")
    poison = b"poison " * 2_000
    _fill(kafka_bootstrap, kafka_settings, src, [poison, b"good"])
    events: Events = []
    _run(
        kafka_bootstrap,
        kafka_settings,
        src,
        group_id,
        _poison_or_upper(out),
        events,
        **{"message.max.bytes": 1_000},
    )
    assert ("minimal", "MSG_SIZE_TOO_LARGE") in events and ("produced", "bad_magic") in events
    (letter,) = _envelopes(kafka_bootstrap, kafka_settings, src, 1)
    assert letter["minimal"] is True and letter["original"]["size"] == len(poison)
    assert _committed(kafka_bootstrap, kafka_settings, group_id, src) == 2


def test_an_output_the_broker_refuses_makes_its_input_a_dead_letter(
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    group_id: str,
) -> None:
    """One output too large for the broker used to fail the whole batch, forever. Now that
    input is a dead letter (undeliverable_output, naming the topic) and the rest goes on."""
    ensure_topics(kafka_settings, kafka_bootstrap, [DEAD_LETTERS])
    src, out = new_topic("src"), new_topic("out")
    _fill(kafka_bootstrap, kafka_settings, src, [b"good big", b"good"])

    def handler(messages: Sequence[Message]) -> tuple[list[OutMessage], list[DeadLetter]]:
        outs = [
            OutMessage(
                out,
                (m.value() or b"").ljust(200_000 if b"big" in (m.value() or b"") else 8),
                key=b"k",
                source=m,
            )
            for m in messages
        ]
        return outs, []

    events: Events = []
    _run(
        kafka_bootstrap,
        kafka_settings,
        src,
        group_id,
        handler,
        events,
        **{"message.max.bytes": 100_000},
    )
    assert ("refused_output", "MSG_SIZE_TOO_LARGE") in events
    (letter,) = _envelopes(kafka_bootstrap, kafka_settings, src, 1)
    assert letter["reason"] == "undeliverable_output" and out in letter["error"]
    assert letter["original"]["size"] == len(b"good big")
    assert _committed(kafka_bootstrap, kafka_settings, group_id, src) == 2


def test_the_original_store_is_capped_deduplicated_and_forgets_expired_ones(
    redis_client: redis.Redis,
) -> None:
    store = OriginalStore(redis_client, ttl_s=1, max_bytes=1_000, total_bytes=2_000)
    a, b, c, d = b"a" * 900, b"b" * 900, b"c" * 1_200, b"d" * 900
    kept = store.keep([a, b, a, c, d])
    assert [k.status for k in kept] == ["redis", "redis", "duplicate", "too_large", "store_full"]
    assert store.fetch(hashlib.sha256(a).hexdigest()) == a
    assert store.fetch(hashlib.sha256(d).hexdigest()) is None
    # Once the first two expire, their bytes are free again.
    deadline = time.monotonic() + 20
    while store.keep([d])[0].status != "redis":
        assert time.monotonic() < deadline, "expired originals never freed the store"
        time.sleep(0.2)
    assert store.fetch(hashlib.sha256(d).hexdigest()) == d
