"""``/v1/alerts/{id}/stamps/{which}.png``: one cutout, stretched for the eye (the desk's view)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from services.common.values import stamp_from_bytes
from services.feedback import stamps, storage
from services.feedback.api_models import ALERT_ID_PATTERN
from services.feedback.auth import CurrentUser, RedisDep

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])
AlertIdPath = Annotated[str, Path(pattern=ALERT_ID_PATTERN)]
# Stamps never change once published; a browser may keep them for the session (private: they
# are behind the user's credentials).
CACHE = "private, max-age=3600"


@router.get(
    "/{alert_id}/stamps/{which}.png",
    response_class=Response,
    responses={
        200: {
            "content": {"image/png": {}},
            "description": "one stamp at its native size, 8-bit grey, bottom row first "
            "(pixel (0, 0) at the bottom left, as ds9 shows FITS); header X-Ahunt-Cutouts says "
            "`original` or `preprocessed` (the scorer's cache expired: the training set's copy)",
        },
        404: {"description": "not delivered to you nor labelled by you, or expired"},
        422: {"description": "the stored cutout does not decode (named in the message)"},
    },
)
async def get_stamp(
    alert_id: AlertIdPath,
    which: stamps.Which,
    user: CurrentUser,
    redis: RedisDep,
    stretch: Annotated[
        stamps.Stretch,
        Query(description="`zscale` (IRAF zscale, linear) or `asinh` (1-99.5 percentiles)"),
    ] = "zscale",
) -> Response:
    """One stamp of an alert delivered to you, or one you labelled (your gallery outlives the
    delivery records), with an astronomical stretch applied per stamp."""
    if (
        await storage.delivered_alert(redis, user, alert_id) is None
        and await storage.get_label(redis, user, alert_id) is None
    ):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no alert {alert_id!r} delivered to you or labelled by you"
        )
    originals, stamp = await storage.cutouts(redis, alert_id)
    kind = "original" if any(o is not None for o in originals) else "preprocessed"
    if kind == "original" and not originals[stamps.STAMPS.index(which)]:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{alert_id!r} carries no {which} cutout")
    try:
        png = await asyncio.to_thread(_render, which, originals, stamp, stretch)
    except stamps.CutoutError as exc:
        raise HTTPException(422, f"the {which} cutout does not decode: {exc}") from None
    if png is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"the cutouts of {alert_id!r} expired")
    return Response(
        png, media_type="image/png", headers={"X-Ahunt-Cutouts": kind, "Cache-Control": CACHE}
    )


def _render(
    which: stamps.Which,
    originals: list[bytes | None],
    stamp: bytes | None,
    stretch: stamps.Stretch,
) -> bytes | None:
    image = stamps.stamp_image(which, originals, None if stamp is None else stamp_from_bytes(stamp))
    return None if image is None else stamps.stamp_png(image, stretch)
