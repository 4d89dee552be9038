"""``/v1/alerts/{id}``: an alert delivered to you, and its cutouts as a picture.

Only alerts delivered to you are shown (others' deliveries answer 404, exactly like unknown
ids, so nothing leaks about what other users receive).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response, status

from services.common.values import stamp_from_bytes
from services.feedback import storage
from services.feedback.api_models import ALERT_ID_PATTERN, AlertOut, LabelOut
from services.feedback.auth import CurrentUser, RedisDep
from services.feedback.handler import alert_view, cutouts_png

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])
AlertIdPath = Annotated[str, Path(pattern=ALERT_ID_PATTERN)]
NOT_DELIVERED = {"description": "not an alert delivered to you (or its delivery record expired)"}


def _not_delivered(alert_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id!r} delivered to you")


@router.get("/{alert_id}", responses={404: NOT_DELIVERED})
async def get_alert(alert_id: AlertIdPath, user: CurrentUser, redis: RedisDep) -> AlertOut:
    found = await storage.delivered_alert(redis, user, alert_id)
    if found is None:
        raise _not_delivered(alert_id)
    return AlertOut(
        **alert_view(alert_id, found.delivery, found.meta),
        your_label=None if found.label is None else LabelOut.of(found.label),
        cutouts_url=f"/v1/alerts/{alert_id}/cutouts.png",
    )


@router.get(
    "/{alert_id}/cutouts.png",
    response_class=Response,
    responses={
        200: {
            "content": {"image/png": {}},
            "description": "science, template and difference side by side (asinh stretch); "
            "header X-Ahunt-Cutouts says `original` or `preprocessed` (cache expired)",
        },
        404: NOT_DELIVERED,
    },
)
async def get_cutouts(alert_id: AlertIdPath, user: CurrentUser, redis: RedisDep) -> Response:
    if await storage.delivered_alert(redis, user, alert_id) is None:
        raise _not_delivered(alert_id)
    originals, stamp = await storage.cutouts(redis, alert_id)
    kind = "original" if any(o is not None for o in originals) else "preprocessed"
    # Decoding and PNG encoding take milliseconds: off the event loop.
    png = await asyncio.to_thread(
        cutouts_png, originals, None if stamp is None else stamp_from_bytes(stamp)
    )
    if png is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"the cutouts of {alert_id!r} expired")
    return Response(png, media_type="image/png", headers={"X-Ahunt-Cutouts": kind})
