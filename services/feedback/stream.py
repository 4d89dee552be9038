"""The live relay behind ``GET /v1/me/stream``: a user's Kafka topic, read as it is published.

One connection, one consumer, with partitions **assigned** explicitly (no consumer group: a relay
commits nothing and must not take partitions away from anyone). Every call on the consumer runs
on the connection's own single worker thread, so the event loop never blocks and ``close`` runs
after the poll in flight, never beside it. Kafka is the buffer: the next poll starts only after
the client took the previous batch, so a slow client costs no memory.

Starting at the end (``from=latest``): the partitions' end offsets, and records stamped before the
stream opened are not relayed. (The second rule is for brokers whose end offset lags: the bundled
Tansu reports the first offset of the last record batch, so a batch of several records would
otherwise be replayed.)

Resuming: an event's id is the position *after* it on every partition (``"0:17,1:9"``: next
offset per partition). A reconnect with that id (``Last-Event-ID``, which ``EventSource`` sends
by itself) starts exactly there, so nothing is lost or repeated; partitions the id does not name
(added later) start at their beginning. Offsets deleted by retention since resume at the oldest
kept (``auto.offset.reset=earliest``).

Limits: ``stream_max_per_user`` open streams per user (429 beyond) and ``stream_max_total`` per
process (503), each a thread and a consumer. :class:`StreamHub.close` ends every stream within a
poll (half a second): the server calls it when it starts shutting down
(:class:`StreamClosingServer`), since a graceful shutdown otherwise waits for streams that never
end.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import uvicorn
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    Message,
    TopicPartition,
)

from services.common import schemas
from services.common.kafka import consumer
from services.common.settings import KafkaSettings
from services.feedback.desk_models import StreamAlert

POLL_S = 0.5  # one poll's wait: how soon a shutdown or a disconnect is noticed
TOPIC_RETRY_S = 2.0  # how often a stream waiting for its topic to exist looks again
MAX_PARTITIONS = 256
EVENT_ID_PATTERN = r"^\d{1,6}:\d{1,19}(,\d{1,6}:\d{1,19})*$"
_EVENT_ID = re.compile(EVENT_ID_PATTERN)
Positions = dict[int, int]  # partition -> next offset to relay
Start = Literal["latest", "earliest"]


def format_event_id(positions: Positions) -> str:
    """
    >>> format_event_id({1: 9, 0: 17})
    '0:17,1:9'
    """
    return ",".join(f"{p}:{o}" for p, o in sorted(positions.items()))


def parse_event_id(text: str) -> Positions:
    """The positions an event id names (the route validates the pattern first).

    >>> parse_event_id("0:17,1:9")
    {0: 17, 1: 9}
    >>> parse_event_id("0:1,0:2")
    Traceback (most recent call last):
    ...
    ValueError: partition 0 named twice in the event id
    """
    if not _EVENT_ID.match(text):
        raise ValueError("an event id is partition:offset[,partition:offset...]")
    parts = text.split(",")
    if len(parts) > MAX_PARTITIONS:
        raise ValueError(f"an event id names at most {MAX_PARTITIONS} partitions")
    out: Positions = {}
    for part in parts:
        p, o = (int(x) for x in part.split(":"))
        if p in out:
            raise ValueError(f"partition {p} named twice in the event id")
        out[p] = o
    return out


def _seconds(x: Any) -> float | None:
    if x is None:
        return None
    if isinstance(x, datetime):
        return x.timestamp()
    return float(x) / 1000.0  # timestamp-millis read without logical types


def alert_event(record: dict[str, Any]) -> StreamAlert:
    """A decoded ``user_alert.v1`` record as the stream's ``alert`` event (no cutout bytes)."""
    alert_id = str(record["alert_id"])
    return StreamAlert(
        alert_id=alert_id,
        object_id=str(record["object_id"]),
        survey=str(record["survey"]),
        score=float(record["score"]),
        reason=str(record["reason"]),
        class_probabilities={str(k): float(v) for k, v in record["class_probabilities"].items()},
        novelty=float(record["novelty"]),
        model_version=str(record["model_version"]),
        ra=record.get("ra"),
        dec=record.get("dec"),
        magnitude=record.get("magnitude"),
        alert_time=_seconds(record.get("alert_time")),
        published_at=_seconds(record.get("published_at")) or 0.0,
        alert_url=f"/v1/alerts/{alert_id}",
        stamps_url=f"/v1/alerts/{alert_id}/stamps/",
    )


@dataclass(frozen=True)
class KafkaSource:
    """Where user topics are read from."""

    settings: KafkaSettings
    bootstrap: str


class StreamLimit(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class StreamHub:
    """Open streams of one process: the limits, and the shutdown signal."""

    source: KafkaSource | None
    max_per_user: int
    max_total: int
    heartbeat_s: float
    closing: threading.Event = field(default_factory=threading.Event)
    _open: Counter[str] = field(default_factory=Counter)

    def acquire(self, user: str) -> None:
        """Count a new stream of ``user`` (event loop only), or raise :class:`StreamLimit`."""
        if self.source is None:
            raise StreamLimit(503, "live stream unavailable: this API runs without Kafka")
        if self.closing.is_set():
            raise StreamLimit(503, "shutting down: reconnect in a moment")
        if self._open[user] >= self.max_per_user:
            raise StreamLimit(
                429, f"at most {self.max_per_user} open streams per user: close one first"
            )
        if sum(self._open.values()) >= self.max_total:
            raise StreamLimit(503, "too many open streams on this server: retry later")
        self._open[user] += 1

    def release(self, user: str) -> None:
        self._open[user] -= 1
        if self._open[user] <= 0:
            del self._open[user]

    def open_streams(self) -> int:
        return sum(self._open.values())

    def close(self) -> None:
        """End every stream (within a poll) and refuse new ones."""
        self.closing.set()


class TopicRelay:
    """One connection's consumer of one topic; ``await`` its methods from the event loop."""

    def __init__(self, source: KafkaSource, topic: str) -> None:
        self.topic = topic
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="desk-stream")
        self._consumer: Consumer = consumer(
            source.settings,
            source.bootstrap,
            "ahunt-desk-stream",  # required by the client; never joined (assign, no commits)
            **{"auto.offset.reset": "earliest", "enable.partition.eof": False},
        )
        self.assigned = False
        self.not_before_ms: int | None = None  # from=latest: older records are not relayed

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.wrap_future(self._pool.submit(fn, *args))

    def _partitions(self) -> list[int] | None:
        metadata = self._consumer.list_topics(self.topic, timeout=5).topics.get(self.topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            return None
        return sorted(metadata.partitions)

    def _assign(self, resume: Positions | None, start: Start) -> Positions | None:
        partitions = self._partitions()
        if partitions is None:
            return None
        positions: Positions = {}
        if resume is None and start == "latest":
            self.not_before_ms = int(time.time() * 1000)
        for p in partitions:
            if resume is not None:
                positions[p] = resume.get(p, OFFSET_BEGINNING)
            else:
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self.topic, p), timeout=5, cached=False
                )
                positions[p] = high if start == "latest" else low
        self._consumer.assign([TopicPartition(self.topic, p, o) for p, o in positions.items()])
        self.assigned = True
        # OFFSET_BEGINNING is a request, not a position: report 0 (the first offset there is).
        return {p: max(o, 0) for p, o in positions.items()}

    async def assign(self, resume: Positions | None, start: Start) -> Positions | None:
        """Assign every partition at the resume positions (or the topic's end/beginning);
        ``None`` while the topic does not exist yet."""
        result: Positions | None = await self._run(self._assign, resume, start)
        return result

    async def poll(self, timeout_s: float = POLL_S) -> Sequence[Message]:
        messages: list[Message] = await self._run(self._consumer.consume, 200, timeout_s)
        for m in messages:
            err = m.error()
            if err is not None and err.code() != KafkaError._PARTITION_EOF:
                raise RuntimeError(f"reading {self.topic}: {err.str()}")
        return [m for m in messages if m.error() is None]

    def published_before_start(self, m: Message) -> bool:
        """A record of the topic's past that ``from=latest`` met anyway (see the module doc)."""
        if self.not_before_ms is None:
            return False
        kind, ts = m.timestamp()
        return kind != TIMESTAMP_NOT_AVAILABLE and 0 < ts < self.not_before_ms

    def close(self) -> None:
        """Close the consumer once the poll in flight returns; never blocks (a cancelled
        request cannot await)."""
        self._pool.submit(self._consumer.close)
        self._pool.shutdown(wait=False)


def decode(message: Message) -> dict[str, Any]:
    return schemas.decode(schemas.USER_ALERT, message.value() or b"")


class StreamClosingServer(uvicorn.Server):
    """uvicorn, ending the app's live streams as shutdown begins (a graceful shutdown waits for
    every open response, and a stream never ends by itself)."""

    async def shutdown(self, sockets: Any = None) -> None:
        hub = getattr(getattr(self.config.app, "state", None), "streams", None)
        if isinstance(hub, StreamHub):
            hub.close()
        await super().shutdown(sockets)
