"""The API's Redis reads and writes (asyncio client), in the layout of ``services.common.store``
and ``services.common.labels``. Every write that acknowledges a label runs inside one MULTI/EXEC
(shared with concurrent requests' writes: ``batching.py``), so a label, its training stamp, the
revision and its feedback event are stored together or not at all (one script each:
``labels.WRITE_SCRIPT``, ``labels.DELETE_SCRIPT``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from services.common import keys, labels
from services.common.labels import LabelRecord
from services.common.users import UserProfile
from services.common.values import text
from services.feedback.batching import RedisBatcher
from services.feedback.events import outbox_entry

PROFILE_WRITE_TRIES = 20


class ProfileContention(RuntimeError):
    """A profile kept changing under compare-and-set: answer 503, the client retries."""


@dataclass(frozen=True)
class LabelTarget:
    """What a label needs from the caches: the alert's metadata, and its stamp unless the
    permanent training set already holds one (``None``: nothing to copy)."""

    meta: dict[str, Any]
    stamp: bytes | None


@dataclass(frozen=True)
class Committed:
    created: bool  # first label of this user for this alert
    revision: int
    profile: UserProfile | None  # the new profile when the answer changed it


def _profile(user: str, raw: bytes | str | None) -> UserProfile:
    return UserProfile(name=user) if raw is None else _parse_profile(raw)


@lru_cache(maxsize=4096)
def _parse_profile(raw: bytes | str) -> UserProfile:
    """Profiles change rarely and are read on every answer: parse each stored version once
    (UserProfile is frozen, so sharing one instance is safe)."""
    return UserProfile.model_validate_json(raw)


async def user_for_hash(b: RedisBatcher, hashed_token: str) -> str | None:
    (raw,) = await b.read(lambda pipe: pipe.hget(keys.TOKENS, hashed_token))
    return text(raw)


async def load_profile(r: Redis, user: str) -> UserProfile:
    return _profile(user, await r.hget(keys.USERS, user))


async def save_profile(r: Redis, profile: UserProfile) -> None:
    await r.hset(keys.USERS, profile.name, profile.model_dump_json())


async def read_for_label(
    b: RedisBatcher, user: str, alert_id: str, with_profile: bool = True
) -> tuple[LabelTarget | None, tuple[UserProfile, bytes | None] | None]:
    """The alert as the label write needs it (``None``: neither cached nor in the training set:
    unknown or expired) and, if asked, the user's profile (parsed, and as stored). One round
    trip, plus one for the stamp (tens of kB) when the alert is not in the training set yet."""

    def queue(pipe: Pipeline) -> None:
        pipe.hget(keys.alert_key(alert_id), "meta")
        pipe.hget(keys.train_key(alert_id), "meta")
        if with_profile:
            pipe.hget(keys.USERS, user)

    meta, train_meta, *raw_profile = await b.read(queue)
    target: LabelTarget | None = None
    if train_meta is not None:  # already in the training set: keep its stamp
        target = LabelTarget(json.loads(meta or train_meta), None)
    elif meta is not None:
        (stamp,) = await b.read(lambda pipe: pipe.hget(keys.alert_key(alert_id), "stamp"))
        if stamp is not None:  # else it expired a moment ago
            target = LabelTarget(json.loads(meta), stamp)
    profile = (_profile(user, raw_profile[0]), raw_profile[0]) if with_profile else None
    return target, profile


# Compare-and-set of one user's profile: the profiles of all users share one hash, so WATCHing it
# would make every user's answers conflict with everyone else's; this conflicts per user only.
PROFILE_CAS = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if (current == false and ARGV[2] == '') or current == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0
"""


def _queue_profile_cas(pipe: Pipeline, old: bytes | str | None, new: UserProfile) -> None:
    pipe.eval(PROFILE_CAS, 1, keys.USERS, new.name, old or b"", new.model_dump_json())


async def commit_label(
    b: RedisBatcher,
    record: LabelRecord,
    target: LabelTarget,
    event: dict[str, Any],
    change: Callable[[UserProfile], UserProfile | None],
    profile: tuple[UserProfile, bytes | None] | None,
) -> Committed:
    """Label, training stamp, revision, outbox event and (if the answer changes it) the profile,
    in one script (``labels.WRITE_SCRIPT``: all or nothing). ``profile`` is the copy read with
    the alert (parsed, raw; ``None``: the answer carries no opinion, so the profile stays as it
    is); the profile is written by compare-and-set against that copy. If another request changed
    this user's profile in between, the label is committed all the same and the answer is
    re-applied to the fresh profile until a compare-and-set succeeds."""
    raw: bytes | str | None = None if profile is None else profile[1]
    new_profile = None if profile is None else change(profile[0])
    names, args = labels.write_args(
        record,
        target.stamp,
        target.meta,
        outbox_entry(event),
        None if new_profile is None else (raw, new_profile.model_dump_json()),
    )
    ((created, revision, profile_written),) = await b.transaction(
        lambda pipe: pipe.eval(labels.WRITE_SCRIPT, len(names), *names, *args)
    )
    if new_profile is None or profile_written == 1:
        return Committed(created == 1, int(revision), new_profile)
    for _ in range(PROFILE_WRITE_TRIES):
        (raw,) = await b.read(lambda pipe: pipe.hget(keys.USERS, record.user))
        new_profile = change(_profile(record.user, raw))
        if new_profile is None:
            return Committed(created == 1, int(revision), None)
        (done,) = await b.read(partial(_queue_profile_cas, old=raw, new=new_profile))
        if done == 1:
            return Committed(created == 1, int(revision), new_profile)
    raise ProfileContention(
        "this profile kept changing; the label is stored, retry to apply the interest answer"
    )


async def get_label(r: Redis, user: str, alert_id: str) -> LabelRecord | None:
    raw = await r.hget(keys.labels_key(user), alert_id)
    return None if raw is None else LabelRecord.model_validate_json(raw)


async def undo_label(b: RedisBatcher, record: LabelRecord, event: dict[str, Any]) -> bool:
    """Remove the user's label (the training stamp stays) and queue the undo event, both only if
    the label was still there (``labels.DELETE_SCRIPT``)."""
    names, args = labels.delete_args(record.user, record.alert_id, outbox_entry(event))
    ((removed, _revision),) = await b.transaction(
        lambda pipe: pipe.eval(labels.DELETE_SCRIPT, len(names), *names, *args)
    )
    return bool(removed)


async def user_labels(r: Redis, user: str) -> list[LabelRecord]:
    """A user's labels, oldest first (``labels.user_labels`` over asyncio)."""
    raw: dict[Any, Any] = await r.hgetall(keys.labels_key(user))
    return labels.parse_labels(raw.values())


async def all_labels(r: Redis) -> list[LabelRecord]:
    """Every user's labels (``labels.all_labels`` over asyncio)."""
    out: list[LabelRecord] = []
    async for key in r.scan_iter(match=labels.LABEL_KEYS, count=1000, _type="hash"):
        out.extend(labels.parse_labels((await r.hgetall(key)).values()))
    return out


async def sample_alert_metas(r: Redis, limit: int) -> list[dict[str, Any]]:
    """Metadata of up to ``limit`` cached alerts (a bounded scan: enough to see the live model)."""
    found: list[bytes] = []
    if limit > 0:
        async for key in r.scan_iter(match=keys.alert_key("*"), count=200, _type="hash"):
            found.append(key)
            if len(found) >= limit:
                break
    if not found:
        return []
    pipe = r.pipeline(transaction=False)
    for key in found:
        pipe.hget(key, "meta")
    return [json.loads(m) for m in await pipe.execute() if m is not None]


@dataclass(frozen=True)
class DeliveredAlert:
    delivery: dict[str, Any]
    meta: dict[str, Any] | None  # None once the cache expired and nobody labelled it
    label: LabelRecord | None  # this user's label, if any


async def delivered_alert(r: Redis, user: str, alert_id: str) -> DeliveredAlert | None:
    """The alert if it was delivered to ``user`` (others' deliveries are invisible: ``None``)."""
    pipe = r.pipeline(transaction=False)
    pipe.hget(keys.delivered_key(user), alert_id)
    pipe.hget(keys.alert_key(alert_id), "meta")
    pipe.hget(keys.train_key(alert_id), "meta")
    pipe.hget(keys.labels_key(user), alert_id)
    delivery, meta, train_meta, label = await pipe.execute()
    if delivery is None:
        return None
    meta = meta or train_meta
    return DeliveredAlert(
        json.loads(delivery),
        None if meta is None else json.loads(meta),
        None if label is None else LabelRecord.model_validate_json(label),
    )


CUTOUT_FIELDS = ("cutout_science", "cutout_template", "cutout_difference")


async def cutouts(r: Redis, alert_id: str) -> tuple[list[bytes | None], bytes | None]:
    """The original cutouts from the cache, and the training set's preprocessed stamp (the
    fallback picture once the cache expired)."""
    pipe = r.pipeline(transaction=False)
    pipe.hmget(keys.alert_key(alert_id), list(CUTOUT_FIELDS))
    pipe.hget(keys.train_key(alert_id), "stamp")
    originals, stamp = await pipe.execute()
    return list(originals), stamp


@dataclass(frozen=True)
class Candidate:
    alert_id: str
    score: float
    delivery: dict[str, Any]


async def unlabelled_candidates(r: Redis, user: str, limit: int) -> list[Candidate]:
    """The ``limit`` best-scored candidates this user has not labelled and can still label."""
    found: list[Candidate] = []
    start, chunk = 0, max(50, 2 * limit)
    while len(found) < limit:
        ranked: Sequence[Any] = await r.zrevrange(
            keys.candidates_key(user), start, start + chunk - 1, withscores=True
        )
        if not ranked:
            break
        ids = [a.decode() for a, _ in ranked]
        pipe = r.pipeline(transaction=False)
        pipe.hmget(keys.labels_key(user), ids)
        pipe.hmget(keys.delivered_key(user), ids)
        for a in ids:
            pipe.exists(keys.alert_key(a), keys.train_key(a))
        labelled, deliveries, *present = await pipe.execute()
        for (alert_id, (_, score)), done, delivery, n in zip(
            zip(ids, ranked, strict=True), labelled, deliveries, present, strict=True
        ):
            if done is None and n and len(found) < limit:
                found.append(
                    Candidate(alert_id, float(score), json.loads(delivery) if delivery else {})
                )
        start += chunk
    return found


async def redis_durability(r: Redis) -> tuple[bool, str]:
    """Whether Redis acknowledges writes only after an fsync: ``appendonly yes`` and
    ``appendfsync always``. A server that refuses CONFIG (managed Redis) counts as unknown."""
    try:
        raw = await r.config_get("append*")
    except ResponseError as exc:
        return False, f"cannot read the persistence settings (CONFIG GET refused: {exc})"
    config = {str(text(k)): str(text(v)) for k, v in raw.items()}
    aof, fsync = config.get("appendonly", "?"), config.get("appendfsync", "?")
    ok = aof == "yes" and fsync == "always"
    return ok, f"appendonly={aof} appendfsync={fsync}"
