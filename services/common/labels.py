"""Durable labels: the one Redis layout the feedback API writes and the retrain service reads
(key names: ``services.common.keys``).

- per user, a hash alert_id -> :class:`LabelRecord` JSON (one label per user and alert: posting
  again replaces it, so re-labelling is idempotent);
- per alert, the training stamp (preprocessed float32 .npy bytes) and its ``meta`` JSON, copied
  out of the scorer's TTL cache when the first label arrives; no TTL: the permanent training set;
- the label revision, incremented by every label write or undo; the retrain loop compares it
  with the revision its last model was trained at.

A write is one Lua script (:data:`WRITE_SCRIPT`), so the label, its stamp, the revision and the
API's feedback event appear together or not at all. Not MULTI/EXEC alone: a command failing at
EXEC (WRONGTYPE) does not roll back the ones before it, which once left a revision bump and a
phantom event for a label that failed; the script checks every key's type before its first write,
and Redis refuses a script's first write as a whole (OOM, READONLY), never half of it. With
``appendfsync always`` Redis answers only after the AOF is fsynced, which is what lets the API
acknowledge a label as durable.

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


# Checks first, writes after: a failure leaves nothing. KEYS: the user's labels, the training
# copy, the revision, the outbox, the profiles. ARGV: alert id, label JSON, "1" if a stamp is
# given, stamp, meta JSON, outbox entry ("" none), user, "1" if a profile change is given, the
# profile as read ("" none), the new profile. Replies {created, revision, profile written: 1,
# 0 (changed meanwhile: compare-and-set lost) or -1 (none given)}.
_CHECKS = """
local function want(key, kind)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= kind then
    return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. t .. ', not a ' .. kind)
  end
end
local function counter(key)
  local bad = want(key, 'string')
  if bad then return bad end
  local v = redis.call('GET', key)
  if v and not string.match(v, '^%-?%d+$') then
    return redis.error_reply('ERR ' .. key .. ' is not an integer counter')
  end
end
"""
WRITE_SCRIPT = (
    _CHECKS
    + """
local bad = want(KEYS[1], 'hash') or want(KEYS[2], 'hash') or counter(KEYS[3])
  or want(KEYS[4], 'list') or want(KEYS[5], 'hash')
if bad then return bad end
local created = redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[2], 'stamp', ARGV[4], 'meta', ARGV[5])
end
local revision = redis.call('INCR', KEYS[3])
if ARGV[6] ~= '' then redis.call('LPUSH', KEYS[4], ARGV[6]) end
local profile = -1
if ARGV[8] == '1' then
  profile = 0
  local current = redis.call('HGET', KEYS[5], ARGV[7])
  if (current == false and ARGV[9] == '') or current == ARGV[9] then
    redis.call('HSET', KEYS[5], ARGV[7], ARGV[10])
    profile = 1
  end
end
return {created, revision, profile}
"""
)
# KEYS: the user's labels, the revision, the outbox. ARGV: alert id, outbox entry ("" none).
# The revision and the event change only if a label was removed. Replies {removed, revision}.
DELETE_SCRIPT = (
    _CHECKS
    + """
local bad = want(KEYS[1], 'hash') or counter(KEYS[2]) or want(KEYS[3], 'list')
if bad then return bad end
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
if removed == 0 then return {0, tonumber(redis.call('GET', KEYS[2]) or '0')} end
local revision = redis.call('INCR', KEYS[2])
if ARGV[2] ~= '' then redis.call('LPUSH', KEYS[3], ARGV[2]) end
return {removed, revision}
"""
)


def write_args(
    record: LabelRecord,
    stamp: np.ndarray | bytes | None,
    meta: dict[str, Any],
    event: str = "",
    profile: tuple[bytes | str | None, str] | None = None,
) -> tuple[list[str], list[bytes | str]]:
    """:data:`WRITE_SCRIPT`'s keys and arguments: store ``record`` and (unless ``None``: the
    training set has it already) its stamp, push ``event`` (an outbox entry, "" none) and, if
    given, compare-and-set the user's profile from ``profile[0]`` (as read) to ``profile[1]``."""
    data = b"" if stamp is None else stamp if isinstance(stamp, bytes) else stamp_bytes(stamp)
    old, new = profile if profile is not None else (None, "")
    return (
        [
            keys.labels_key(record.user),
            keys.train_key(record.alert_id),
            keys.LABELS_REVISION,
            keys.FEEDBACK_OUTBOX,
            keys.USERS,
        ],
        [
            record.alert_id,
            record.model_dump_json(),
            "0" if stamp is None else "1",
            data,
            json.dumps(meta),
            event,
            record.user,
            "0" if profile is None else "1",
            old or b"",
            new,
        ],
    )


def delete_args(user: str, alert_id: str, event: str = "") -> tuple[list[str], list[str]]:
    """:data:`DELETE_SCRIPT`'s keys and arguments."""
    return [keys.labels_key(user), keys.LABELS_REVISION, keys.FEEDBACK_OUTBOX], [alert_id, event]


def write_label(
    client: redis.Redis, record: LabelRecord, stamp: np.ndarray | bytes, meta: dict[str, Any]
) -> int:
    """Store ``record`` and its training stamp atomically; returns the new label revision."""
    names, args = write_args(record, stamp, meta)
    _created, revision, _ = client.eval(WRITE_SCRIPT, len(names), *names, *args)
    return int(revision)


def delete_label(client: redis.Redis, user: str, alert_id: str) -> bool:
    """Undo a user's label. The training stamp stays (other users may have labelled it)."""
    names, args = delete_args(user, alert_id)
    removed, _ = client.eval(DELETE_SCRIPT, len(names), *names, *args)
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


# Every user's label hash (no other key matches: tests/unit/test_key_names.py).
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
