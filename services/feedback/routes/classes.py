"""``/v1/classes``: the taxonomy as the caller may see it.

Who sees which class names (docs/SECURITY.md): the classes of a live model are the shared
taxonomy (every delivered alert carries their probabilities, so every user sees them anyway);
a class that only exists in labels is private to the users who labelled it until a retrain puts
it into a model. Counts of labels are the caller's own; the number of users is given for model
classes only (1 for the caller's private ones), so nobody learns another user's private classes
or how much anyone else labels.
"""

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
async def classes(user: CurrentUser, redis: RedisDep, request: Request) -> ClassesOut:
    """The classes of the live models (read from a bounded sample of the scorer's cached
    alerts) and of the caller's own labels, the caller's most labelled first."""
    metas = await storage.sample_alert_metas(redis, request.app.state.settings.classes_scan_limit)
    models = newest_models(metas)
    in_model = {c for m in models.values() for c in m["classes"]}
    shared = in_model | {RESERVE}
    own: defaultdict[str, int] = defaultdict(int)
    for r in await storage.user_labels(redis, user):
        own[r.label] += 1
    users: defaultdict[str, set[str]] = defaultdict(set)
    for r in await storage.all_labels(redis):
        if r.label in shared:
            users[r.label].add(r.user)
    names = sorted(shared | set(own), key=lambda c: (-own.get(c, 0), c))
    return ClassesOut(
        classes=[
            ClassInfo(
                name=c,
                labels=own.get(c, 0),
                users=len(users[c]) if c in shared else 1,
                in_model=c in in_model,
            )
            for c in names
        ],
        models={s: ModelInfo(**m) for s, m in models.items()},
    )
