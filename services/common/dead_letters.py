"""Dead letters: a poison input, why, and where its whole original is kept.

A dead letter must always be deliverable, whatever the input: the envelope is bounded (about
``prefix_bytes`` x 2 + 16 kB at most, whatever the input's size; its key is the input's, or
``sha256:<hex>`` of it when the input's key is over 1 kB) and carries the original's
sha256, size and a prefix; the whole original goes to a Redis store (:class:`OriginalStore`),
where ``ahunt dlq get SHA256`` fetches it. One input message gives one envelope, however many of
its records are broken: each record's index, reason and error is listed in ``records``.

**Envelope, version 2** (JSON on ``ahunt.dlq``, keyed by the input's key; headers
``ahunt-dlq-version: 2``, ``ahunt-dlq-reason``, ``ahunt-service``)::

    envelope_version   2 (version 1, before it, had no such field and carried the whole
                       original as hex in "original")
    reason             the first problem's reason (also the ahunt-dlq-reason header)
    error_class        the first problem's class (DecodeError, ScoringError, ConfigurationError,
                       DeliveryError)
    error              the first problem's message (at most 1,000 characters)
    records            [{index, reason, error, alert_id, error_class}] for each problem, at most
                       100 (records_omitted counts the rest); index is the record's place in the
                       message, null when the whole message was refused
    records_omitted    problems beyond the first 100
    service, model_version, time
    source             {topic, partition, offset}: where the input still is, while the input
                       topic's retention keeps it
    original           {sha256, size, prefix (hex of the first prefix_bytes bytes),
                       prefix_bytes, kept}: kept is "redis" when the store holds the whole
                       original (kept_until: unix time it expires), else why not: "too_large",
                       "store_full", "store_unavailable", "not_configured"
    minimal            true when the full envelope was refused by the broker and this shorter
                       one (no prefix, no records, the first error cut to 200 characters; well
                       under 1 kB) was sent instead

What "delivered" means for a dead letter is in :mod:`services.common.kafka` (``ConsumerLoop``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import redis

from services.common import keys

if TYPE_CHECKING:
    from confluent_kafka import Message

log = logging.getLogger("ahunt.dlq")

ENVELOPE_VERSION: Final = 2
MAX_ERROR_CHARS: Final = 1_000
MAX_RECORDS: Final = 100
MINIMAL_ERROR_CHARS: Final = 200
MAX_KEY_BYTES: Final = 1_024
#: What became of an original (the envelope's ``original.kept``; a metric label).
KEPT_OUTCOMES: Final = ("redis", "duplicate", "too_large", "store_full", "store_unavailable")


@dataclass(frozen=True)
class Problem:
    """Why one record (``index`` in the message) or the whole message (``index=None``) is a dead
    letter; ``reason`` is a stable string (a metric label)."""

    reason: str
    error: str
    index: int | None = None
    alert_id: str | None = None
    error_class: str = "DecodeError"


@dataclass(frozen=True)
class DeadLetter:
    """A poison input and why: becomes one envelope on the dead-letter topic."""

    message: Message
    problems: tuple[Problem, ...]

    @classmethod
    def of(
        cls, message: Message, reason: str, error: str, error_class: str = "DecodeError"
    ) -> DeadLetter:
        """One problem with the whole message."""
        return cls(message, (Problem(reason, error, error_class=error_class),))

    @property
    def reason(self) -> str:
        return self.problems[0].reason

    @property
    def source(self) -> tuple[str | None, int | None, int | None]:
        m = self.message
        return m.topic(), m.partition(), m.offset()


def merge(letters: Sequence[DeadLetter]) -> list[DeadLetter]:
    """One dead letter per input message (first appearance order), its problems together: a
    multi-record packet with broken records gives one envelope, not one copy per record."""
    merged: dict[tuple[str | None, int | None, int | None], DeadLetter] = {}
    for letter in letters:
        found = merged.get(letter.source)
        if found is None:
            merged[letter.source] = letter
        else:
            merged[letter.source] = DeadLetter(found.message, found.problems + letter.problems)
    return list(merged.values())


@dataclass(frozen=True)
class Kept:
    """What became of an original: ``status`` one of :data:`KEPT_OUTCOMES` or
    ``not_configured``; ``until`` the unix time a kept original expires."""

    status: str
    until: float | None = None

    @property
    def fetchable(self) -> bool:
        return self.status in ("redis", "duplicate")


NOT_CONFIGURED: Final = Kept("not_configured")


def _clip(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def envelope(
    letter: DeadLetter,
    service: str,
    model_version: str | None,
    kept: Kept,
    prefix_bytes: int,
    *,
    minimal: bool = False,
) -> tuple[bytes, tuple[tuple[str, bytes], ...]]:
    """The envelope's value and headers (module docstring); ``minimal``: the short form sent
    when the broker refused the full one."""
    payload = letter.message.value() or b""
    first = letter.problems[0]
    problems = () if minimal else letter.problems[:MAX_RECORDS]
    topic, partition, offset = letter.source
    original: dict[str, Any] = {
        "sha256": hashlib.sha256(payload).hexdigest(),
        "size": len(payload),
        "kept": kept.status if not kept.fetchable else "redis",
    }
    if kept.until is not None:
        original["kept_until"] = kept.until
    if not minimal:
        original["prefix"] = payload[:prefix_bytes].hex()
        original["prefix_bytes"] = min(prefix_bytes, len(payload))
    body: dict[str, Any] = {
        "envelope_version": ENVELOPE_VERSION,
        "reason": first.reason,
        "error_class": first.error_class,
        "error": _clip(first.error, MINIMAL_ERROR_CHARS if minimal else MAX_ERROR_CHARS),
        "records": [
            {
                "index": p.index,
                "reason": p.reason,
                "error": _clip(p.error),
                "alert_id": p.alert_id,
                "error_class": p.error_class,
            }
            for p in problems
        ],
        "records_omitted": len(letter.problems) - len(problems),
        "service": service,
        "model_version": model_version,
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "time": time.time(),
        "original": original,
    }
    if minimal:
        body["minimal"] = True
    headers = (
        ("ahunt-dlq-version", str(ENVELOPE_VERSION).encode()),
        ("ahunt-dlq-reason", first.reason.encode()),
        ("ahunt-service", service.encode()),
    )
    return json.dumps(body).encode(), headers


def envelope_key(letter: DeadLetter) -> bytes | None:
    """The input's key, bounded like the rest of the envelope.

    >>> from confluent_kafka import Message
    >>> envelope_key(DeadLetter.of(Message(key=b"k" * 2000), "bad_magic", ""))[:10]
    b'sha256:1c8'
    """
    key = letter.message.key()
    if key is None or len(key) <= MAX_KEY_BYTES:
        return key
    return b"sha256:" + hashlib.sha256(key).hexdigest().encode()


# One round trip per original, atomic across replicas: forget the originals that expired (their
# keys expired with them; the index remembers each one's size until then), refuse when the store
# would exceed its total, else keep it with its TTL. A duplicate (the same bytes again, e.g. a
# replayed batch) refreshes nothing and costs nothing. Members are "<sha256>:<size>", scored by
# their expiry time.
_KEEP = """
local key, index, total = KEYS[1], KEYS[2], KEYS[3]
local sha, ttl, cap, now = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local size = string.len(ARGV[2])
local gone = redis.call('ZRANGEBYSCORE', index, '-inf', now)
for _, member in ipairs(gone) do
  redis.call('DECRBY', total, tonumber(string.match(member, ':(%d+)$')))
end
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', index, '-inf', now) end
if redis.call('EXISTS', key) == 1 then return 'duplicate' end
local used = tonumber(redis.call('GET', total) or '0')
if used + size > cap then return 'store_full' end
redis.call('SET', key, ARGV[2], 'EX', ttl)
redis.call('ZADD', index, now + ttl, sha .. ':' .. size)
redis.call('INCRBY', total, size)
return 'redis'
"""


class OriginalStore:
    """The whole originals of dead letters, in Redis by sha256, for ``ttl_s``; one original is
    kept if it is at most ``max_bytes``, and only while all of them together stay within
    ``total_bytes`` (a flood of garbage cannot fill Redis; its envelopes still say what it was).
    Redis failing here costs the original, never the envelope: the input is still at its
    source offset while the input topic keeps it."""

    def __init__(self, client: redis.Redis, ttl_s: int, max_bytes: int, total_bytes: int) -> None:
        self.client, self.ttl_s = client, ttl_s
        self.max_bytes, self.total_bytes = max_bytes, total_bytes
        self._script = client.register_script(_KEEP)

    def keep(self, payloads: Sequence[bytes]) -> list[Kept]:
        """Keep each payload (one pipelined round trip); what became of each."""
        now = time.time()
        out: list[Kept | None] = [None] * len(payloads)
        pipe = self.client.pipeline(transaction=False)
        queued: list[int] = []
        for i, payload in enumerate(payloads):
            if len(payload) > self.max_bytes:
                out[i] = Kept("too_large")
                continue
            sha = hashlib.sha256(payload).hexdigest()
            self._script(
                keys=[
                    keys.dead_letter_original_key(sha),
                    keys.DEAD_LETTER_ORIGINALS,
                    keys.DEAD_LETTER_ORIGINALS_BYTES,
                ],
                args=[sha, payload, self.ttl_s, self.total_bytes, now],
                client=pipe,
            )
            queued.append(i)
        if queued:
            try:
                answers = pipe.execute()
            except redis.RedisError as exc:
                log.warning("dead-letter originals not kept (Redis: %s)", exc)
                answers = ["store_unavailable"] * len(queued)
            for i, answer in zip(queued, answers, strict=True):
                status = answer.decode() if isinstance(answer, bytes) else str(answer)
                out[i] = Kept(status, now + self.ttl_s if status == "redis" else None)
        return [k or Kept("store_unavailable") for k in out]

    def fetch(self, sha256: str) -> bytes | None:
        """The original with this sha256, or None (never kept, or expired)."""
        data = self.client.get(keys.dead_letter_original_key(sha256.lower()))
        return data if isinstance(data, bytes) else None
