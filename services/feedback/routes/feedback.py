"""``/v1/feedback``: label an alert, list your labels, undo one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from pydantic import TypeAdapter, ValidationError

from services.common.labels import LabelRecord
from services.feedback import storage
from services.feedback.api_models import (
    ALERT_ID_PATTERN,
    CLASS_INPUT_PATTERN,
    ClassName,
    FeedbackIn,
    FeedbackOut,
    LabelOut,
    LabelsPage,
)
from services.feedback.auth import CurrentUser, RedisDep
from services.feedback.handler import apply_answer, feedback_event, page_labels

router = APIRouter(prefix="/v1", tags=["feedback"])
AlertIdPath = Annotated[str, Path(pattern=ALERT_ID_PATTERN)]
NOT_FOUND = {"description": "unknown or expired alert (or no label of yours to undo)"}


@router.post(
    "/feedback",
    status_code=status.HTTP_201_CREATED,
    response_model=FeedbackOut,
    responses={
        200: {"model": FeedbackOut, "description": "replaced your earlier label of this alert"},
        404: NOT_FOUND,
    },
)
async def post_feedback(body: FeedbackIn, user: CurrentUser, request: Request) -> Response:
    """Label an alert. Answered only once the label is durable (Redis AOF, fsync always).

    Any alert id still in the scorer's cache (or already in the training set) may be labelled,
    delivered to you or not: ids are not secret, and a label is only ever your own. Posting
    again for the same alert replaces your label (200) instead of adding one.
    """
    state = request.app.state
    batcher = state.batcher  # concurrent requests share Redis round trips (group commit)
    opinion = body.interesting is not None
    target, profile = await storage.read_for_label(batcher, user, body.alert_id, opinion)
    if target is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"unknown or expired alert {body.alert_id!r}: not in the scorer's cache (kept 7 days "
            "by default) nor in the training set",
        )
    record = LabelRecord(
        user=user,
        alert_id=body.alert_id,
        label=body.label,
        interesting=body.interesting,
        comment=body.comment,
        survey=str(target.meta.get("survey") or "ztf"),
        model_version=_text(target.meta.get("model_version")),
    )
    committed = await storage.commit_label(
        batcher,
        record,
        target,
        feedback_event("label", record),
        lambda p: apply_answer(p, record.label, record.interesting),
        profile,
    )
    state.metrics.labels.labels(state.class_series(record.label)).inc()
    if state.publisher is not None:
        state.publisher.notify()
    out = FeedbackOut.model_construct(  # trusted values: serialise once, no re-validation
        **record.model_dump(exclude={"user"}),
        created=committed.created,
        revision=committed.revision,
        interest_changed=committed.profile is not None,
    )
    return Response(
        out.model_dump_json(),
        status.HTTP_201_CREATED if committed.created else status.HTTP_200_OK,
        media_type="application/json",
    )


def _text(x: object) -> str | None:
    return None if x is None else str(x)


@router.get("/feedback")
async def list_feedback(
    user: CurrentUser,
    redis: RedisDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    label: Annotated[
        str | None,
        Query(max_length=64, pattern=CLASS_INPUT_PATTERN, description="one class only"),
    ] = None,
) -> LabelsPage:
    """Your labels, newest first."""
    wanted = None if label is None else _class_name(label)
    page = page_labels(await storage.user_labels(redis, user), wanted, limit, offset)
    return LabelsPage(
        items=[LabelOut.of(r) for r in page.items],
        total=page.total,
        limit=limit,
        offset=offset,
        next_offset=page.next_offset,
    )


def _class_name(text: str) -> str:
    try:
        return TypeAdapter(ClassName).validate_python(text)
    except ValidationError as exc:
        raise HTTPException(422, exc.errors()[0]["msg"]) from None


@router.delete(
    "/feedback/{alert_id}", status_code=status.HTTP_204_NO_CONTENT, responses={404: NOT_FOUND}
)
async def undo_feedback(
    alert_id: AlertIdPath, user: CurrentUser, redis: RedisDep, request: Request
) -> Response:
    """Remove your label of this alert. Interest changes it made stay (edit them with
    ``PUT /v1/me/interest``); the alert's training stamp stays for other users' labels."""
    record = await storage.get_label(redis, user, alert_id)
    if record is None or not await storage.undo_label(
        request.app.state.batcher, record, feedback_event("undo", record)
    ):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"you have no label of alert {alert_id!r}")
    if request.app.state.publisher is not None:
        request.app.state.publisher.notify()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
