"""Kafka plumbing shared by every service: clients, topics, the dead-letter envelope, and the
one at-least-once consumer loop.

The loop's invariant: **an input offset is committed only after every output it caused, dead
letters included, has been acknowledged by the broker.** Poison messages become dead letters (and
are committed, so a partition never stalls); infrastructure errors raise, the process exits, and a
restart replays from the last commit. Consumers of our topics must therefore expect duplicates,
which is why every output is keyed (per-user alerts by alert id).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from services.common.settings import KafkaSettings
from services.common.topics import DEAD_LETTERS

log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """Outputs were not all acknowledged: offsets must not be committed."""


@dataclass(frozen=True)
class OutMessage:
    """A message to produce; it carries its own destination (per-user topics)."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class DeadLetter:
    """A poison input and why: becomes an envelope on the dead-letter topic."""

    message: Message
    reason: str
    error: str
    error_class: str = "DecodeError"

    def envelope(self, service: str, model_version: str | None) -> OutMessage:
        m = self.message
        body = {
            "reason": self.reason,
            "error_class": self.error_class,
            "error": self.error,
            "service": service,
            "model_version": model_version,
            "source": {"topic": m.topic(), "partition": m.partition(), "offset": m.offset()},
            "time": time.time(),
            "original": (m.value() or b"").hex(),
        }
        return OutMessage(
            DEAD_LETTERS,
            json.dumps(body).encode(),
            key=m.key(),
            headers=(
                ("ahunt-dlq-reason", self.reason.encode()),
                ("ahunt-service", service.encode()),
            ),
        )


def producer(settings: KafkaSettings, bootstrap: str, **extra: Any) -> Producer:
    config: dict[str, Any] = {
        **settings.client_config(bootstrap),
        # Idempotent: broker-side dedupe of our own retries; acks=all is implied.
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "none",
        **extra,
    }
    return Producer(config)


def consumer(settings: KafkaSettings, bootstrap: str, group: str, **extra: Any) -> Consumer:
    config: dict[str, Any] = {
        **settings.client_config(bootstrap),
        "group.id": group,
        "enable.auto.commit": False,  # we commit explicit offsets after delivery
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.session_timeout_ms,
        "fetch.wait.max.ms": settings.fetch_wait_max_ms,
        "heartbeat.interval.ms": min(
            settings.heartbeat_interval_ms, settings.session_timeout_ms // 3
        ),
        **extra,
    }
    return Consumer(config)


def ensure_topics(
    settings: KafkaSettings,
    bootstrap: str,
    topics: Iterable[str],
    partitions: int | None = None,
    config: dict[str, str] | None = None,
) -> None:
    """Create the topics that do not exist yet (idempotent; concurrent creators are fine)."""
    admin = AdminClient(settings.client_config(bootstrap))
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [t for t in dict.fromkeys(topics) if t not in existing]
    if not wanted:
        return
    futures = admin.create_topics(
        [
            NewTopic(
                t,
                partitions or settings.topic_partitions,
                settings.replication_factor,
                config=config or {},
            )
            for t in wanted
        ]
    )
    for future in futures.values():
        try:
            future.result(timeout=30)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def partition_lags(
    c: Consumer, partitions: Sequence[TopicPartition], timeout_s: float = 10.0
) -> list[tuple[TopicPartition, int]]:
    """Each partition's lag for ``c``'s group: high watermark minus committed offset (no commit
    yet counts from 0), never negative (some brokers report odd watermarks)."""
    lags = []
    for tp in c.committed(list(partitions), timeout=timeout_s):
        _low, high = c.get_watermark_offsets(
            TopicPartition(tp.topic, tp.partition), timeout=timeout_s, cached=False
        )
        lags.append((tp, max(0, high - max(tp.offset, 0))))
    return lags


def group_backlog(settings: KafkaSettings, bootstrap: str, group: str, topic: str) -> int:
    """Messages of ``topic`` that ``group`` has not committed yet (without joining the group)."""
    c = consumer(settings, bootstrap, group)
    try:
        metadata = c.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return 0
        parts = [TopicPartition(topic, p) for p in metadata.partitions]
        return sum(lag for _tp, lag in partition_lags(c, parts))
    finally:
        c.close()


@dataclass
class Delivery:
    """Produce a batch and wait until every message is acknowledged, or raise."""

    producer: Producer
    flush_timeout_s: float = 30.0
    _errors: list[str] = field(default_factory=list)

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err}")

    def send(self, messages: Sequence[OutMessage]) -> None:
        self._errors.clear()
        for out in messages:
            while True:
                try:
                    self.producer.produce(
                        out.topic,
                        out.value,
                        out.key,
                        headers=list(out.headers),
                        on_delivery=self._on_delivery,
                    )
                    break
                except BufferError:  # local queue full: serve callbacks and retry
                    self.producer.poll(0.1)
        remaining = self.producer.flush(self.flush_timeout_s)
        if remaining:
            raise DeliveryError(f"{remaining} messages undelivered after {self.flush_timeout_s} s")
        if self._errors:
            raise DeliveryError(f"{len(self._errors)} delivery errors, first: {self._errors[0]}")


def next_offsets(messages: Sequence[Message]) -> list[TopicPartition]:
    """The offsets to commit after ``messages``: highest offset + 1 per partition."""
    last: dict[tuple[str, int], int] = {}
    for m in messages:
        topic, partition, offset = m.topic(), m.partition(), m.offset()
        assert topic is not None and partition is not None and offset is not None
        last[(topic, partition)] = max(last.get((topic, partition), -1), offset)
    return [TopicPartition(t, p, o + 1) for (t, p), o in sorted(last.items())]


def poll_batch(c: Consumer, max_messages: int, timeout_s: float) -> list[Message]:
    """Up to ``max_messages`` messages, or none after ``timeout_s``. Partition-end events are
    dropped; any other error raises: broker and client errors are infrastructure, so the process
    crashes and replays from its last commit instead of skipping what it could not read."""
    good: list[Message] = []
    for m in c.consume(max_messages, timeout_s):
        err = m.error()
        if err is None:
            good.append(m)
        elif err.code() != KafkaError._PARTITION_EOF:
            raise KafkaException(err)
    return good


Handler = Callable[[Sequence[Message]], tuple[list[OutMessage], list[DeadLetter]]]


@dataclass
class ConsumerLoop:
    """poll a batch -> handle -> produce outputs and dead letters -> require all delivered ->
    commit explicit offsets. The only Kafka loop in the code base.

    ``handler`` is pure with respect to Kafka: it turns input messages into outputs and dead
    letters. ``stop`` (e.g. set by SIGTERM) is checked between batches, so the current batch
    finishes and is committed before exit.
    """

    consumer: Consumer
    delivery: Delivery
    handler: Handler
    service: str
    model_version: Callable[[], str | None] = lambda: None
    batch_size: int = 256
    poll_timeout_s: float = 0.2
    on_batch: Callable[[int, float], None] | None = None
    on_stage: Callable[[str, float], None] | None = None
    on_committed: Callable[[Sequence[Message]], None] | None = None
    # Fault injection for crash tests: exit the process hard after delivering this many batches,
    # before committing the last one (0 = never).
    crash_after_batches: int = 0
    stopping: bool = False
    _delivered_batches: int = 0

    def run(self, max_batches: int | None = None) -> None:
        batches = 0
        while not self.stopping and (max_batches is None or batches < max_batches):
            if self.step():
                batches += 1

    def step(self) -> bool:
        """Process one batch; returns False if nothing arrived."""
        good = poll_batch(self.consumer, self.batch_size, self.poll_timeout_s)
        if not good:
            return False
        started = time.perf_counter()
        outputs, dead = self.handler(good)
        handled = time.perf_counter()
        version = self.model_version()
        self.delivery.send([*outputs, *(d.envelope(self.service, version) for d in dead)])
        delivered = time.perf_counter()
        self._delivered_batches += 1
        if self.crash_after_batches and self._delivered_batches >= self.crash_after_batches:
            os._exit(75)
        self.consumer.commit(offsets=next_offsets(good), asynchronous=False)
        if self.on_committed is not None:
            self.on_committed(good)
        if self.on_stage is not None:
            self.on_stage("produce", delivered - handled)
            self.on_stage("commit", time.perf_counter() - delivered)
        if self.on_batch is not None:
            self.on_batch(len(good), time.perf_counter() - started)
        return True
