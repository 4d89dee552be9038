"""The Redis reads and writes shared by the scorer (writer of the feedback cache) and the
feedback API (reader, and writer of profiles): user profiles, cached alerts and deliveries.

Key names and what each key holds: ``services.common.keys``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import redis

from services.common import keys
from services.common.users import UserProfile
from services.common.values import stamp_bytes


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)


def load_profiles(client: redis.Redis) -> list[UserProfile]:
    """All user profiles, sorted by name (a stable column order for the score matrix)."""
    raw: dict[bytes, bytes] = client.hgetall(keys.USERS)  # type: ignore[assignment]
    return sorted((UserProfile.model_validate_json(v) for v in raw.values()), key=lambda p: p.name)


def save_profile(client: redis.Redis, profile: UserProfile) -> None:
    client.hset(keys.USERS, profile.name, profile.model_dump_json())


def cache_alert(
    pipe: redis.client.Pipeline,
    alert_id: str,
    meta: dict[str, Any],
    stamp: np.ndarray,
    cutouts: Sequence[bytes],
    ttl_s: int,
) -> None:
    key = keys.alert_key(alert_id)
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
    pipe: redis.client.Pipeline,
    user: str,
    alert_id: str,
    delivery: dict[str, Any],
    ttl_s: int,
    candidates_max: int,
) -> None:
    record_deliveries(pipe, user, {alert_id: delivery}, ttl_s, candidates_max)


def record_deliveries(
    pipe: redis.client.Pipeline,
    user: str,
    deliveries: dict[str, dict[str, Any]],
    ttl_s: int,
    candidates_max: int,
) -> None:
    """A user's deliveries of one batch (alert id -> record) in four commands, whatever their
    number: trimming the candidates once after adding them all keeps the same best
    ``candidates_max`` as trimming after each (only the lowest scores are ever removed)."""
    if not deliveries:
        return
    pipe.hset(
        keys.delivered_key(user),
        mapping={alert_id: json.dumps(d) for alert_id, d in deliveries.items()},
    )
    pipe.zadd(
        keys.candidates_key(user),
        {alert_id: float(d["score"]) for alert_id, d in deliveries.items()},
    )
    # Keep the best ``candidates_max``: rank 0 is the lowest score.
    pipe.zremrangebyrank(keys.candidates_key(user), 0, -candidates_max - 1)
    pipe.expire(keys.delivered_key(user), ttl_s)
