"""Kafka plumbing shared by every service: clients, topics, the dead-letter envelope, and the
one at-least-once consumer loop.

The loop's invariant: **an input offset is committed only after every output it caused, dead
letters included, has been delivered**: acknowledged by the broker or, for a dead letter the broker
refuses for good even in its minimal form, written to the service's log (what "delivered" means
for a dead letter is in ``ConsumerLoop``'s docstring). Poison messages become dead letters (and
are committed, so a partition never stalls); so do inputs whose output the broker refuses for
good; infrastructure errors raise, the process exits, and a restart replays from the last commit.
Consumers of our topics must therefore expect duplicates, which is why every output is keyed
(per-user alerts by alert id).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from services.common.dead_letters import (
    NOT_CONFIGURED,
    DeadLetter,
    Kept,
    OriginalStore,
    Problem,
    envelope,
    envelope_key,
    merge,
)
from services.common.settings import KafkaSettings
from services.common.topics import DEAD_LETTERS

log = logging.getLogger(__name__)
dead_log = logging.getLogger("ahunt.dlq")

__all__ = [
    "PERMANENT_PRODUCE_ERRORS",
    "TRANSIENT_CONSUMER_ERRORS",
    "ConsumerLoop",
    "DeadLetter",
    "Delivery",
    "DeliveryError",
    "OutMessage",
    "Problem",
    "Refused",
    "consumer",
    "ensure_topics",
    "group_backlog",
    "next_offsets",
    "partition_lags",
    "poll_batch",
    "producer",
]


class DeliveryError(RuntimeError):
    """Outputs were not all acknowledged: offsets must not be committed."""


@dataclass(frozen=True)
class OutMessage:
    """A message to produce; it carries its own destination (per-user topics) and, for an
    output, the input it came from (``source``): if the broker refuses the output for good, that
    input becomes a dead letter instead of stalling the loop."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
    source: Message | None = field(default=None, compare=False)


def producer(settings: KafkaSettings, bootstrap: str, **extra: Any) -> Producer:
    config: dict[str, Any] = {
        **settings.client_config(bootstrap),
        # Idempotent: broker-side dedupe of our own retries (KafkaSettings says when not).
        "enable.idempotence": settings.enable_idempotence,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "none",
        **extra,
    }
    if settings.statistics_interval_ms and "stats_cb" in extra:
        config["statistics.interval.ms"] = settings.statistics_interval_ms
    else:
        config.pop("stats_cb", None)  # librdkafka would compute statistics nobody reads
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


# Produce errors that concern one message and that retrying it will not cure: the broker (or the
# client, before sending) refuses that message. Anything else (a timeout, the transport, a broker
# down, a fatal idempotence error) is infrastructure: the batch raises and replays.
PERMANENT_PRODUCE_ERRORS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_MSG,
        KafkaError.TOPIC_EXCEPTION,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.POLICY_VIOLATION,
        KafkaError._INVALID_ARG,
        # The topic does not exist and the broker does not create it (after librdkafka waited
        # for metadata): an operator must create it; until then the message has nowhere to go.
        KafkaError._UNKNOWN_TOPIC,
    }
)


@dataclass(frozen=True)
class Refused:
    """A message the broker refused for good: its place in what was sent, and why."""

    index: int
    error: KafkaError


@dataclass
class Delivery:
    """Produce a batch and wait until every message is acknowledged, or raise."""

    producer: Producer
    flush_timeout_s: float = 30.0

    def send(self, messages: Sequence[OutMessage]) -> None:
        """Every message acknowledged, or :class:`DeliveryError` (whatever the error)."""
        refused = self.produce_all(messages)
        if refused:
            raise _delivery_error(messages, refused)

    def produce_all(self, messages: Sequence[OutMessage]) -> list[Refused]:
        """Produce ``messages`` and wait for every answer. Returns the ones refused for good
        (:data:`PERMANENT_PRODUCE_ERRORS`); raises :class:`DeliveryError` if any other could not
        be acknowledged (the caller must not commit)."""
        errors: list[Refused] = []
        for index, out in enumerate(messages):

            def on_delivery(err: KafkaError | None, _msg: Message, index: int = index) -> None:
                if err is not None:
                    errors.append(Refused(index, err))

            while True:
                try:
                    self.producer.produce(
                        out.topic,
                        out.value,
                        out.key,
                        headers=list(out.headers),
                        on_delivery=on_delivery,
                    )
                    break
                except BufferError:  # local queue full: serve callbacks and retry
                    self.producer.poll(0.1)
                except KafkaException as exc:  # refused before sending (e.g. too large)
                    errors.append(Refused(index, exc.args[0]))
                    break
        remaining = self.producer.flush(self.flush_timeout_s)
        if remaining:
            raise DeliveryError(f"{remaining} messages undelivered after {self.flush_timeout_s} s")
        transient = [r for r in errors if r.error.code() not in PERMANENT_PRODUCE_ERRORS]
        if transient:
            raise _delivery_error(messages, transient)
        return sorted(errors, key=lambda r: r.index)


def _delivery_error(messages: Sequence[OutMessage], errors: Sequence[Refused]) -> DeliveryError:
    first = errors[0]
    return DeliveryError(
        f"{len(errors)} delivery errors, first: {messages[first.index].topic}: {first.error.str()}"
    )


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
        elif err.code() in TRANSIENT_CONSUMER_ERRORS:
            log.warning("broker unreachable or reorganising, the client retries: %s", err.str())
        elif err.code() != KafkaError._PARTITION_EOF:
            raise KafkaException(err)
    return good


# Consumer errors of a broker that is down, restarting or has lost a topic for a moment: the
# client reconnects and re-fetches metadata by itself, and nothing was read, so nothing is
# skipped by going on (a restarted broker that lost data is noticed by ConsumerLoop instead).
TRANSIENT_CONSUMER_ERRORS = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
        KafkaError._TIMED_OUT,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    }
)


Handler = Callable[[Sequence[Message]], tuple[list[OutMessage], list[DeadLetter]]]
# (event, label) of the dead-letter path, for the service's metrics: "kept" (the original's
# outcome), "produced" (reason), "minimal" and "unproduced" (the Kafka error), "refused_output"
# (the Kafka error), "transient" (the first error's kind, before DeliveryError is raised).
DeadLetterEvent = Callable[[str, str], None]


@dataclass
class ConsumerLoop:
    """poll a batch -> handle -> produce outputs and dead letters -> require all delivered ->
    commit explicit offsets. The only Kafka loop in the code base.

    ``handler`` is pure with respect to Kafka: it turns input messages into outputs and dead
    letters. ``stop`` (e.g. set by SIGTERM) is checked between batches, so the current batch
    finishes and is committed before exit.

    Dead letters are merged (one per input message, every broken record listed), their originals
    kept in ``originals`` (when given) and their bounded envelopes produced with the outputs
    (``services.common.dead_letters``). A dead letter counts as **delivered** when either

    1. the broker acknowledged its envelope on the dead-letter topic: the full one or, when the
       broker refused the full one for good (``PERMANENT_PRODUCE_ERRORS``), the minimal one; or
    2. the broker refused the minimal one for good too: the minimal envelope is then written to
       this service's log at ERROR (logger ``ahunt.dlq``, one JSON line) and counted
       (``on_dead_letter("unproduced", error)``); its original is in the store if it fit there,
       and the input is still at its source offset while the topic keeps it.

    An output the broker refuses for good makes its input a dead letter (``undeliverable_output``,
    naming the topic), delivered the same way; an output without a ``source`` raises. Any other
    produce error (a timeout, a broker down) is infrastructure: counted, then
    :class:`DeliveryError`, nothing committed, the batch replays. So no input's content can stop
    the loop, and no offset is committed before its outputs and dead letters are delivered.
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
    originals: OriginalStore | None = None
    prefix_bytes: int = 4096  # of each original, in its envelope
    dead_letter_topic: str = DEAD_LETTERS
    on_dead_letter: DeadLetterEvent | None = None
    # Fault injection for crash tests: exit the process hard after delivering this many batches,
    # before committing the last one (0 = never).
    crash_after_batches: int = 0
    # A broker that went away: with a factory, a batch whose outputs were not acknowledged is
    # sent again through a new producer, ``delivery_attempts`` times in all, backing off, before
    # DeliveryError is raised. A new producer because an idempotent one's sequence numbers are
    # refused for ever by a broker that restarted without its state; the retried outputs are
    # keyed copies, which every consumer of our topics already expects.
    producer_factory: Callable[[], Producer] | None = None
    delivery_attempts: int = 6
    # (topic, partition, offset this loop last committed, offset now read): the broker handed
    # out an offset below one this loop had committed, so it lost the partition's log or its
    # committed offsets (a broker restarted without durable storage) or someone reset the group.
    on_offsets_reset: Callable[[str, int, int, int], None] | None = None
    # Errors of a store the handler needs that pass by themselves (Redis restarting): the loop
    # pauses instead of exiting: each partition of the batch goes back to its first message (the
    # one after the last commit), ``on_pause`` is told (the handler drops state it derived from
    # the failed batch), and the batch is tried again every ``pause_s``, polling meanwhile so the
    # consumer stays in its group.
    pause_if: Callable[[Exception], bool] | None = None
    pause_s: float = 1.0
    on_pause: Callable[[BaseException | None], None] | None = None
    stopping: bool = False
    _delivered_batches: int = 0
    _paused_since: float | None = None
    _committed: dict[tuple[str, int], int] = field(default_factory=dict)

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
        self._check_offsets(good)
        try:
            outputs, dead = self.handler(good)
        except Exception as exc:
            if self.pause_if is None or not self.pause_if(exc):
                raise
            self._pause(good, exc)
            return False
        if self._paused_since is not None:
            log.warning("resumed after %.1f s", time.monotonic() - self._paused_since)
            self._paused_since = None
            if self.on_pause is not None:
                self.on_pause(None)
        handled = time.perf_counter()
        self._deliver_with_retries(outputs, dead)
        delivered = time.perf_counter()
        self._delivered_batches += 1
        if self.crash_after_batches and self._delivered_batches >= self.crash_after_batches:
            os._exit(75)
        offsets = next_offsets(good)
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            if self.producer_factory is None:
                raise
            # Delivered but not committed (the group moved on during an outage): the batch is
            # read again by whoever owns its partitions now; copies, keyed, never a loss.
            log.warning("commit refused, the batch will be read again: %s", exc)
            return True
        for tp in offsets:
            self._committed[(tp.topic, tp.partition)] = tp.offset
        if self.on_committed is not None:
            self.on_committed(good)
        if self.on_stage is not None:
            self.on_stage("produce", delivered - handled)
            self.on_stage("commit", time.perf_counter() - delivered)
        if self.on_batch is not None:
            self.on_batch(len(good), time.perf_counter() - started)
        return True

    def _check_offsets(self, messages: Sequence[Message]) -> None:
        """Say loudly when a partition's offsets went back below what this loop committed."""
        lowest: dict[tuple[str, int], int] = {}
        for m in messages:
            topic, partition, offset = m.topic(), m.partition(), m.offset()
            assert topic is not None and partition is not None and offset is not None
            key = (topic, partition)
            lowest[key] = min(lowest.get(key, offset), offset)
        for (topic, partition), offset in sorted(lowest.items()):
            was = self._committed.get((topic, partition))
            if was is None or offset >= was:
                continue
            log.error(
                "%s[%d] went back from offset %d (committed here) to %d: the broker lost this "
                "partition's log or its committed offsets (restarted without durable storage?) "
                "or the group was reset; records this service had not read before the loss are "
                "gone from the broker and must be sent again from their source",
                topic,
                partition,
                was,
                offset,
            )
            self._committed[(topic, partition)] = offset
            if self.on_offsets_reset is not None:
                self.on_offsets_reset(topic, partition, was, offset)

    def _deliver_with_retries(
        self, outputs: Sequence[OutMessage], dead: Sequence[DeadLetter]
    ) -> None:
        for attempt in range(1, self.delivery_attempts + 1):
            try:
                self.deliver(outputs, dead)
                return
            except DeliveryError as exc:
                if self.producer_factory is None or attempt == self.delivery_attempts:
                    raise
                wait_s = min(2.0 ** (attempt - 1), 10.0)
                log.warning(
                    "outputs not acknowledged (%s): new producer, batch sent again in %.0f s "
                    "(attempt %d of %d)",
                    exc,
                    wait_s,
                    attempt + 1,
                    self.delivery_attempts,
                )
                self.delivery.producer.purge()
                self.delivery.producer = self.producer_factory()
                time.sleep(wait_s)

    def _pause(self, batch: Sequence[Message], exc: BaseException) -> None:
        if self._paused_since is None:
            self._paused_since = time.monotonic()
            log.warning("paused at the last commit (%s: %s); retrying", type(exc).__name__, exc)
        first: dict[tuple[str, int], int] = {}
        for m in batch:
            key = (m.topic() or "", m.partition() or 0)
            first[key] = min(first.get(key, m.offset() or 0), m.offset() or 0)
        for (topic, partition), offset in first.items():
            try:
                self.consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException:
                owned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
                if (topic, partition) in owned:
                    raise  # cannot go back: exit, and a restart replays from the commit
                # no longer ours (a rebalance): its new owner replays it from the commit
        if self.on_pause is not None:
            self.on_pause(exc)
        time.sleep(self.pause_s)

    def deliver(self, outputs: Sequence[OutMessage], dead: Sequence[DeadLetter]) -> None:
        """Deliver ``outputs`` and ``dead`` in the sense of the class docstring, or raise."""
        version = self.model_version()
        outs = list(outputs)
        # (letter, what became of its original, minimal form?)
        pending = self._with_originals(merge(dead))
        while outs or pending:
            sent = [*outs, *(self._envelope(p, version) for p in pending)]
            try:
                refused = self.delivery.produce_all(sent)
            except DeliveryError:
                self._event("transient", "delivery")
                raise
            refused_at = {r.index: r.error for r in refused}
            retry: list[tuple[DeadLetter, Kept, bool]] = []
            undeliverable: list[DeadLetter] = []
            for index, error in refused_at.items():
                if index < len(outs):
                    undeliverable.append(self._undeliverable(outs[index], error))
            for i, (letter, kept, minimal) in enumerate(pending):
                refusal = refused_at.get(len(outs) + i)
                if refusal is None:
                    self._event("produced", letter.reason)
                elif minimal:
                    self._unproduced(letter, kept, version, refusal)
                else:
                    self._event("minimal", refusal.name())
                    retry.append((letter, kept, True))
            outs = []
            pending = retry + self._with_originals(merge(undeliverable))

    def _with_originals(self, letters: list[DeadLetter]) -> list[tuple[DeadLetter, Kept, bool]]:
        if not letters:
            return []
        if self.originals is None:
            kept = [NOT_CONFIGURED] * len(letters)
        else:
            kept = self.originals.keep([letter.message.value() or b"" for letter in letters])
        for k in kept:
            self._event("kept", k.status)
        return [(letter, k, False) for letter, k in zip(letters, kept, strict=True)]

    def _envelope(self, pending: tuple[DeadLetter, Kept, bool], version: str | None) -> OutMessage:
        letter, kept, minimal = pending
        value, headers = envelope(
            letter, self.service, version, kept, self.prefix_bytes, minimal=minimal
        )
        return OutMessage(self.dead_letter_topic, value, envelope_key(letter), headers)

    def _undeliverable(self, out: OutMessage, error: KafkaError) -> DeadLetter:
        if out.source is None:
            raise DeliveryError(f"{out.topic} refused an output: {error.str()}")
        self._event("refused_output", error.name())
        problem = Problem(
            "undeliverable_output",
            f"{out.topic} refused it: {error.str()}",
            alert_id=(out.key or b"").decode(errors="replace") or None,
            error_class="DeliveryError",
        )
        return DeadLetter(out.source, (problem,))

    def _unproduced(
        self, letter: DeadLetter, kept: Kept, version: str | None, error: KafkaError
    ) -> None:
        self._event("unproduced", error.name())
        value, _ = envelope(letter, self.service, version, kept, 0, minimal=True)
        dead_log.error(
            "dead letter not produced (%s: %s), kept here instead: %s",
            error.name(),
            error.str(),
            value.decode(),
        )

    def _event(self, event: str, label: str) -> None:
        if self.on_dead_letter is not None:
            self.on_dead_letter(event, label)
