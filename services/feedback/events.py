"""Feedback events: the Redis outbox and its publisher to Kafka ``ahunt.feedback``.

Order, and why: a label is acknowledged once **Redis** has it (``appendfsync always``: Redis
answers after the AOF fsync). The event describing it is pushed onto the outbox list
``ahunt:feedback:outbox`` by that same script (``labels.WRITE_SCRIPT``), so label and event
exist together or not at all. This publisher then drains the outbox: produce the oldest events,
wait for every broker acknowledgement (``Delivery.send`` flushes and raises on any error), and
only then trim them from the list. If Kafka is down the label is still durable and its event
waits in the outbox; a crash between the acknowledgement and the trim republishes a few events,
so delivery is at least once and consumers dedupe by ``event_id``. One publisher at a time holds
a Redis lock (several API workers share one outbox), so events leave in commit order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer
from redis.asyncio import Redis

from services.common import keys, schemas
from services.common.kafka import Delivery, OutMessage
from services.feedback.handler import EVENT_SCHEMA
from services.feedback.metrics import FeedbackMetrics

log = logging.getLogger("ahunt.feedback.events")


def outbox_entry(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


def event_message(topic: str, entry: bytes) -> OutMessage:
    """An outbox entry as the Kafka message: Avro body, keyed by user (a user's events stay in
    order in one partition), headers naming the schema."""
    event = json.loads(entry)
    return OutMessage(
        topic,
        schemas.encode(EVENT_SCHEMA, event),
        key=str(event["user"]).encode(),
        headers=schemas.headers_for(EVENT_SCHEMA)
        + (("ahunt-event-id", str(event["event_id"]).encode()),),
    )


class OutboxPublisher:
    """Drains the outbox to Kafka in a background task of the API's event loop."""

    def __init__(
        self,
        redis: Redis,
        delivery: Delivery,
        topic: str,
        metrics: FeedbackMetrics,
        *,
        batch: int = 500,
        poll_s: float = 1.0,
        gather_s: float = 0.02,
        new_producer: Callable[[], Producer] | None = None,
    ) -> None:
        self.redis, self.delivery, self.topic, self.metrics = redis, delivery, topic, metrics
        # After a failed attempt the next one goes through a new producer: an idempotent
        # producer's sequence numbers are refused for ever by a broker that restarted without
        # its state (the embedded broker keeps it in memory), so the old one would never deliver.
        self.new_producer = new_producer
        self.batch, self.poll_s, self.gather_s = batch, poll_s, gather_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def notify(self) -> None:
        """A label was committed: publish soon rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="feedback-outbox")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        backoff = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_s + backoff)
            self._wake.clear()
            try:
                while await self.drain_once() >= self.batch:
                    pass
                backoff = 0.0
            except Exception as exc:  # Redis or Kafka down: events stay queued, try again later
                self.metrics.publish_errors.inc()
                backoff = min(30.0, max(1.0, backoff * 2))
                log.error("feedback events not published (retry in %.0f s): %s", backoff, exc)
            if self._stopping:
                return
            # Let events gather: one drain has a fixed cost (lock, read, flush, trim), so
            # under load this publishes fewer, larger batches for a few ms more latency.
            await asyncio.sleep(self.gather_s)

    def _purge(self) -> None:
        self.delivery.producer.purge()
        self.delivery.producer.flush(0)
        if self.new_producer is not None:
            self.delivery.producer = self.new_producer()

    async def drain_once(self) -> int:
        """Publish up to ``batch`` of the oldest events; returns how many left the outbox."""
        lock = self.redis.lock(
            keys.FEEDBACK_OUTBOX_LOCK, timeout=max(30.0, 3 * self.delivery.flush_timeout_s)
        )
        if not await lock.acquire(blocking=False):
            return 0  # another worker is publishing
        try:
            # LPUSH adds on the left: the oldest events are the rightmost.
            raw: list[Any] = await self.redis.lrange(keys.FEEDBACK_OUTBOX, -self.batch, -1)
            if not raw:
                self.metrics.outbox_events.set(0)
                return 0
            oldest_first = raw[::-1]
            messages: list[OutMessage] = []
            for entry in oldest_first:
                try:
                    messages.append(event_message(self.topic, entry))
                except (ValueError, KeyError, TypeError) as exc:
                    log.error(
                        "outbox entry cannot be encoded, moved to %s: %s",
                        keys.FEEDBACK_OUTBOX_DEAD,
                        exc,
                    )
                    await self.redis.rpush(keys.FEEDBACK_OUTBOX_DEAD, entry)
            try:
                await asyncio.to_thread(self.delivery.send, messages)  # raises unless all acked
            except Exception:
                # Drop the producer's copies: the outbox still has them and the next attempt
                # produces them again (otherwise each failed attempt would queue one more copy).
                await asyncio.to_thread(self._purge)
                raise
            pipe = self.redis.pipeline(transaction=True)
            pipe.ltrim(keys.FEEDBACK_OUTBOX, 0, -len(raw) - 1)
            pipe.llen(keys.FEEDBACK_OUTBOX)
            _, left = await pipe.execute()
            self.metrics.events_published.inc(len(messages))
            self.metrics.outbox_events.set(left)
            return len(raw)
        finally:
            # Expired, or Redis gone: the lock times out by itself.
            with contextlib.suppress(Exception):
                await lock.release()
