"""``/v1/classes``: the taxonomy as the users and the live models see it."""

from __future__ import annotations

from collections import defaultdict

from fastapi import APIRouter, Request

from models.taxonomy import RESERVE
from services.feedback import storage
from services.feedback.api_models import ClassesOut, ClassInfo, ModelInfo
from services.feedback.auth import CurrentUser, RedisDep
from services.feedback.handler import newest_models

router = APIRouter(prefix="/v1", tags=["classes"])


@router.get("/classes")
async def classes(_user: CurrentUser, redis: RedisDep, request: Request) -> ClassesOut:
    """Every class used in a label (counts across all users) or known to a live model (read
    from a bounded sample of the scorer's cached alerts), most labelled first."""
    labels: defaultdict[str, int] = defaultdict(int)
    users: defaultdict[str, set[str]] = defaultdict(set)
    for r in await storage.all_labels(redis):
        labels[r.label] += 1
        users[r.label].add(r.user)
    metas = await storage.sample_alert_metas(redis, request.app.state.settings.classes_scan_limit)
    models = newest_models(metas)
    in_model = {c for m in models.values() for c in m["classes"]}
    names = sorted(set(labels) | in_model | {RESERVE}, key=lambda c: (-labels.get(c, 0), c))
    return ClassesOut(
        classes=[
            ClassInfo(
                name=c, labels=labels.get(c, 0), users=len(users.get(c, ())), in_model=c in in_model
            )
            for c in names
        ],
        models={s: ModelInfo(**m) for s, m in models.items()},
    )
