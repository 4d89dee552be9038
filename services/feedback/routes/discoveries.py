"""``/v1/me/discoveries``: your discovery curve and the gallery of what you liked."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query

from services.common import keys
from services.feedback import storage
from services.feedback.auth import CurrentUser, RedisDep
from services.feedback.desk_models import CurvePoint, DiscoveriesOut, LikedAlert
from services.feedback.discovery import discovery_curve

router = APIRouter(prefix="/v1/me", tags=["me"])


@router.get("/discoveries")
async def discoveries(
    user: CurrentUser,
    redis: RedisDep,
    gallery: Annotated[int, Query(ge=0, le=200, description="liked alerts to list")] = 24,
    points: Annotated[
        int, Query(ge=2, le=2000, description="at most this many curve points")
    ] = 400,
) -> DiscoveriesOut:
    """How your discoveries grew: after each of your labels (in time order), how many you had
    given and how many of them you marked interesting; and the alerts you liked, newest first,
    with their stamps (kept in the training set, so they outlive the scorer's cache)."""
    records = sorted(
        await storage.user_labels(redis, user), key=lambda r: (r.labelled_at, r.alert_id)
    )
    curve = discovery_curve([(r.labelled_at, r.interesting is True) for r in records], points)
    liked = [r for r in reversed(records) if r.interesting is True][:gallery]
    metas: list[bytes | None] = []
    if liked:
        pipe = redis.pipeline(transaction=False)
        for r in liked:
            pipe.hget(keys.train_key(r.alert_id), "meta")
            pipe.hget(keys.alert_key(r.alert_id), "meta")
        raw = await pipe.execute()
        metas = [a or b for a, b in zip(raw[::2], raw[1::2], strict=True)]
    return DiscoveriesOut(
        labelled=len(records),
        liked=sum(r.interesting is True for r in records),
        curve=[CurvePoint(at=at, labelled=n, liked=k) for at, n, k in curve],
        gallery=[
            LikedAlert(
                alert_id=r.alert_id,
                label=r.label,
                labelled_at=r.labelled_at,
                object_id=None if m is None else json.loads(m).get("object_id"),
                survey=r.survey,
                stamps_url=f"/v1/alerts/{r.alert_id}/stamps/",
            )
            for r, m in zip(liked, metas, strict=True)
        ],
    )
