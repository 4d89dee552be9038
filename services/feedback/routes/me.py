"""``/v1/me``: who you are, your interest, and the questions worth answering next."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.common.topics import user_topic
from services.feedback import storage
from services.feedback.api_models import InterestDoc, LabelCounts, MeOut, Question, QuestionsOut
from services.feedback.auth import CurrentUser, RedisDep
from services.feedback.handler import label_counts, optional_number

router = APIRouter(prefix="/v1/me", tags=["me"])


@router.get("")
async def me(user: CurrentUser, redis: RedisDep) -> MeOut:
    profile = await storage.load_profile(redis, user)
    counts = label_counts(await storage.user_labels(redis, user))
    return MeOut(
        user=user,
        topic=user_topic(user),
        interest=InterestDoc.of(profile),
        budget=profile.budget,
        labels=LabelCounts(total=sum(counts.values()), by_class=counts),
    )


@router.get("/interest")
async def get_interest(user: CurrentUser, redis: RedisDep) -> InterestDoc:
    return InterestDoc.of(await storage.load_profile(redis, user))


@router.put("/interest")
async def put_interest(body: InterestDoc, user: CurrentUser, redis: RedisDep) -> InterestDoc:
    """Replace your interest (the profile the scorer reads; it picks changes up within seconds).
    Fields you omit take their defaults; unknown fields and negative weights are refused."""
    profile = body.profile(user)
    await storage.save_profile(redis, profile)
    return InterestDoc.of(profile)


@router.get("/questions")
async def questions(
    user: CurrentUser,
    redis: RedisDep,
    limit: Annotated[int, Query(ge=1, le=100, description="how many")] = 10,
) -> QuestionsOut:
    """The best-scored alerts delivered to you that you have not labelled yet (and that can
    still be labelled), with the reason each was chosen."""
    found = await storage.unlabelled_candidates(redis, user, limit)
    return QuestionsOut(
        items=[
            Question(
                alert_id=c.alert_id,
                score=c.score,
                reason=str(c.delivery.get("reason", "")),
                model_version=c.delivery.get("model_version"),
                delivered_at=optional_number(c.delivery.get("delivered_at")),
                alert_url=f"/v1/alerts/{c.alert_id}",
                cutouts_url=f"/v1/alerts/{c.alert_id}/cutouts.png",
            )
            for c in found
        ]
    )
