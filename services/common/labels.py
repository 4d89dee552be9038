"""Durable labels: the one Redis layout the feedback API writes and the retrain service reads
(key names: ``services.common.keys``).

- per user, a hash alert_id -> :class:`LabelRecord` JSON (one label per user and alert: posting
  again replaces it, so re-labelling is idempotent);
- per alert, the training stamp (preprocessed float32 .npy bytes) and its ``meta`` JSON, copied
  out of the scorer's TTL cache when the first label arrives; no TTL: the permanent training set;
- the label revision, incremented by every label write or undo; the retrain loop compares it
  with the revision its last model was trained at.

A write is one MULTI/EXEC transaction, so the label, its stamp and the revision appear together
or not at all; with ``appendfsync always`` Redis answers EXEC only after the AOF is fsynced, which
is what lets the API acknowledge a label as durable.

Conflicting labels (several users labelling one alert differently) are all kept, per user. For
training, :func:`resolve_training_labels` applies one documented rule: the class chosen by most
users wins; a tie goes to the most recent label among the tied classes.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.taxonomy import normalise_class_name
from services.common import keys
from services.common.values import data, stamp_bytes, stamp_from_bytes

if TYPE_CHECKING:  # types only: the label rules run without a Redis client library
    import redis
    import redis.asyncio.client

    # A transaction the label commands are queued on: synchronous, or the feedback API's asyncio.
    Pipeline = redis.client.Pipeline | redis.asyncio.client.Pipeline

MAX_COMMENT = 2_000


class LabelRecord(BaseModel):
    """One user's label of one alert."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user: str
    alert_id: str = Field(min_length=1, max_length=200)
    label: str
    interesting: bool | None = None
    comment: str | None = Field(default=None, max_length=MAX_COMMENT)
    survey: str = "ztf"
    model_version: str | None = None
    labelled_at: float = Field(default_factory=time.time)

    @field_validator("label")
    @classmethod
    def _label(cls, v: str) -> str:
        return normalise_class_name(v)


def write_label(
    client: redis.Redis, record: LabelRecord, stamp: np.ndarray | bytes, meta: dict[str, Any]
) -> int:
    """Store ``record`` and its training stamp atomically; returns the new label revision."""
    data = stamp if isinstance(stamp, bytes) else stamp_bytes(stamp)
    pipe = client.pipeline(transaction=True)
    pipe.hset(keys.labels_key(record.user), record.alert_id, record.model_dump_json())
    pipe.hset(keys.train_key(record.alert_id), mapping={"stamp": data, "meta": json.dumps(meta)})
    pipe.incr(keys.LABELS_REVISION)
    return int(pipe.execute()[-1])


def queue_write_label(
    pipe: Pipeline, record: LabelRecord, stamp: np.ndarray | bytes | None, meta: dict[str, Any]
) -> None:
    """Queue :func:`write_label`'s commands on the caller's MULTI/EXEC pipeline (sync or asyncio),
    so other writes (the feedback event outbox, the profile) commit in the same transaction.

    Replies, in order: HSET of the label (1 = new, 0 = replaced), HSET of the training stamp
    (only when ``stamp`` is given: ``None`` keeps the stamp already in the training set), INCR of
    the revision.
    """
    pipe.hset(keys.labels_key(record.user), record.alert_id, record.model_dump_json())
    if stamp is not None:
        data = stamp if isinstance(stamp, bytes) else stamp_bytes(stamp)
        pipe.hset(
            keys.train_key(record.alert_id), mapping={"stamp": data, "meta": json.dumps(meta)}
        )
    pipe.incr(keys.LABELS_REVISION)


def queue_delete_label(pipe: Pipeline, user: str, alert_id: str) -> None:
    """Queue :func:`delete_label`'s commands on the caller's transaction (replies: HDEL, INCR)."""
    pipe.hdel(keys.labels_key(user), alert_id)
    pipe.incr(keys.LABELS_REVISION)


def delete_label(client: redis.Redis, user: str, alert_id: str) -> bool:
    """Undo a user's label. The training stamp stays (other users may have labelled it)."""
    pipe = client.pipeline(transaction=True)
    pipe.hdel(keys.labels_key(user), alert_id)
    pipe.incr(keys.LABELS_REVISION)
    removed, _ = pipe.execute()
    return bool(removed)


def get_label(client: redis.Redis, user: str, alert_id: str) -> LabelRecord | None:
    raw = client.hget(keys.labels_key(user), alert_id)
    return None if raw is None else LabelRecord.model_validate_json(raw)


def parse_labels(stored: Iterable[bytes | str]) -> list[LabelRecord]:
    """Stored label JSON -> records, oldest first (ties by alert id): the one order every reader,
    synchronous or asyncio, gets.

    >>> a = LabelRecord(user="u", alert_id="2", label="x", labelled_at=5).model_dump_json()
    >>> b = LabelRecord(user="u", alert_id="1", label="x", labelled_at=9).model_dump_json()
    >>> [r.alert_id for r in parse_labels([b, a])]
    ['2', '1']
    """
    records = (LabelRecord.model_validate_json(v) for v in stored)
    return sorted(records, key=lambda r: (r.labelled_at, r.alert_id))


# Every user's label hash; scan with _type="hash": the revision counter's key matches too.
LABEL_KEYS = keys.labels_key("*")


def user_labels(client: redis.Redis, user: str) -> list[LabelRecord]:
    """A user's labels, oldest first."""
    return parse_labels(client.hgetall(keys.labels_key(user)).values())


def all_labels(client: redis.Redis) -> list[LabelRecord]:
    """Every user's labels, user by user, each oldest first (users found by key scan, so labels
    of a removed user still count)."""
    out: list[LabelRecord] = []
    for key in client.scan_iter(match=LABEL_KEYS, count=1000, _type="hash"):
        out.extend(parse_labels(client.hgetall(key).values()))
    return out


def revision(client: redis.Redis) -> int:
    return int(client.get(keys.LABELS_REVISION) or 0)


def training_example(
    client: redis.Redis, alert_id: str
) -> tuple[np.ndarray, dict[str, Any]] | None:
    stamp, meta = client.hmget(keys.train_key(alert_id), ["stamp", "meta"])
    stored = data(stamp)
    if stored is None:
        return None
    return stamp_from_bytes(stored), json.loads(meta or b"{}")


def resolve_training_labels(records: Iterable[LabelRecord]) -> dict[str, str]:
    """One class per alert for training: most users win, a tie goes to the latest label.

    >>> a = LabelRecord(user="a", alert_id="1", label="sn", labelled_at=1)
    >>> b = LabelRecord(user="b", alert_id="1", label="artefact", labelled_at=2)
    >>> c = LabelRecord(user="c", alert_id="1", label="sn", labelled_at=0)
    >>> resolve_training_labels([a, b])
    {'1': 'artefact'}
    >>> resolve_training_labels([a, b, c])
    {'1': 'sn'}
    """
    by_alert: dict[str, list[LabelRecord]] = {}
    for r in records:
        by_alert.setdefault(r.alert_id, []).append(r)
    resolved: dict[str, str] = {}
    for alert_id, group in sorted(by_alert.items()):
        votes = Counter(r.label for r in group)
        top = max(votes.values())
        tied = {label for label, n in votes.items() if n == top}
        latest = max((r for r in group if r.label in tied), key=lambda r: (r.labelled_at, r.user))
        resolved[alert_id] = latest.label
    return resolved
