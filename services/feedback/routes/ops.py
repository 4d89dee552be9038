"""Operator endpoints, open (no token): liveness, readiness (Redis answers) and metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from services.common import keys
from services.feedback.api_models import Health, Ready

router = APIRouter(tags=["operations"])
log = logging.getLogger("ahunt.feedback")


@router.get("/healthz")
async def healthz() -> Health:
    """The process is up (it does not look at Redis: use /readyz)."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Ready,
    responses={503: {"model": Ready, "description": "Redis unreachable"}},
)
async def readyz(request: Request) -> Response:
    state = request.app.state
    try:
        await state.redis.ping()
        outbox = int(await state.redis.llen(keys.FEEDBACK_OUTBOX))
    except RedisError as exc:
        # The error text can name hosts, users or key names: it goes to the log, not the caller.
        log.warning("readiness: Redis unavailable: %r", exc)
        body = Ready(
            status="unavailable",
            redis="unavailable",
            durable=state.durable,
            outbox=None,
            kafka_durable=state.settings.kafka_durable,
        )
        return JSONResponse(
            body.model_dump(),
            status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(state.settings.retry_after_s)},
        )
    return JSONResponse(
        Ready(
            status="ok",
            redis="ok",
            durable=state.durable,
            outbox=outbox,
            kafka_durable=state.settings.kafka_durable,
        ).model_dump()
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    state = request.app.state
    try:  # gauges read from Redis at scrape time; metrics are still served when it is down
        state.metrics.users.set(await state.redis.hlen(keys.USERS))
        state.metrics.outbox_events.set(await state.redis.llen(keys.FEEDBACK_OUTBOX))
    except RedisError:
        pass
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
