"""The Redis layout shared by the scorer (writer of caches) and the feedback API (reader, and
writer of labels and profiles). Key names come only from here.

- ``ahunt:users``                       hash user -> UserProfile JSON
- ``ahunt:alert:<alert_id>``            hash: meta JSON, stamp (preprocessed float32 .npy bytes),
                                        cutouts (original bytes); TTL (default 7 days), so a label
                                        arriving days later can still be trained on
- ``ahunt:user:<user>:delivered``       hash alert_id -> delivery JSON (score, reason, version)
- ``ahunt:user:<user>:candidates``      sorted set alert_id by score: recent unlabelled candidates
                                        for the "questions" endpoint, trimmed to a bound
- ``ahunt:tokens``                      hash sha256(API token) -> user (feedback API identity;
                                        tokens themselves are never stored)
- ``ahunt:feedback:outbox``             list of feedback events (JSON) written in the label's own
                                        transaction, drained to Kafka ``ahunt.feedback``
- ``ahunt:session:<sha256(session id)>`` string: the sha256 of the API token a desk sign-in
                                        was made with (TTL = the session's lifetime)
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import redis

from services.common.users import UserProfile

USERS = "ahunt:users"
TOKENS = "ahunt:tokens"
FEEDBACK_OUTBOX = "ahunt:feedback:outbox"


def alert_key(alert_id: str) -> str:
    return f"ahunt:alert:{alert_id}"


def session_key(session_hash: str) -> str:
    return f"ahunt:session:{session_hash}"


def delivered_key(user: str) -> str:
    return f"ahunt:user:{user}:delivered"


def candidates_key(user: str) -> str:
    return f"ahunt:user:{user}:candidates"


def stamp_bytes(stamp: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(stamp, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def stamp_from_bytes(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)


def load_profiles(client: redis.Redis) -> list[UserProfile]:
    """All user profiles, sorted by name (a stable column order for the score matrix)."""
    raw: dict[bytes, bytes] = client.hgetall(USERS)  # type: ignore[assignment]
    return sorted((UserProfile.model_validate_json(v) for v in raw.values()), key=lambda p: p.name)


def save_profile(client: redis.Redis, profile: UserProfile) -> None:
    client.hset(USERS, profile.name, profile.model_dump_json())


def cache_alert(
    pipe: Any,
    alert_id: str,
    meta: dict[str, Any],
    stamp: np.ndarray,
    cutouts: Sequence[bytes],
    ttl_s: int,
) -> None:
    key = alert_key(alert_id)
    pipe.hset(
        key,
        mapping={
            "meta": json.dumps(meta),
            "stamp": stamp_bytes(stamp),
            "cutout_science": cutouts[0],
            "cutout_template": cutouts[1],
            "cutout_difference": cutouts[2],
        },
    )
    pipe.expire(key, ttl_s)


def record_delivery(
    pipe: Any, user: str, alert_id: str, delivery: dict[str, Any], ttl_s: int, candidates_max: int
) -> None:
    pipe.hset(delivered_key(user), alert_id, json.dumps(delivery))
    pipe.zadd(candidates_key(user), {alert_id: float(delivery["score"])})
    # Keep the best ``candidates_max``: rank 0 is the lowest score.
    pipe.zremrangebyrank(candidates_key(user), 0, -candidates_max - 1)
    pipe.expire(delivered_key(user), ttl_s)
