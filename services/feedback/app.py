"""The feedback API's app factory: wires Redis, the optional Kafka producer, metrics and routes.

``create_app(settings, redis, producer)`` is all a host process needs; ``services.feedback.serve``
runs it with uvicorn (standalone, or in a thread beside other services). The redis client is a
``redis.asyncio.Redis``; the app disconnects its pool at shutdown so the same client can serve a
later app on another event loop. ``producer=None`` runs without Kafka: feedback events still go
to the Redis outbox and wait there for an API that has a producer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from confluent_kafka import Producer
from fastapi import FastAPI, Request, status
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from models.taxonomy import RESERVE
from services.common import keys
from services.common.kafka import Delivery
from services.common.metrics import BoundedValues
from services.common.redis_errors import unavailable_reply
from services.feedback import storage
from services.feedback.auth import SCHEME, TokenCache
from services.feedback.batching import RedisBatcher
from services.feedback.events import OutboxPublisher
from services.feedback.metrics import FeedbackMetrics
from services.feedback.middleware import BodyLimit, RequestMetrics
from services.feedback.ratelimit import TokenBuckets
from services.feedback.routes import (
    alerts,
    classes,
    desk,
    discoveries,
    feedback,
    me,
    ops,
    session,
    stamps,
    stream,
)
from services.feedback.settings import FeedbackSettings
from services.feedback.stamps import warm as warm_stamps
from services.feedback.stream import KafkaSource, StreamHub

log = logging.getLogger("ahunt.feedback")
ROUTERS = (
    feedback.router,
    me.router,
    alerts.router,
    classes.router,
    ops.router,
    session.router,
    stream.router,
    stamps.router,
    discoveries.router,
)
DESCRIPTION = """Labels and interest for the ahunt alert broker.

Authenticate with `Authorization: Bearer <token>` (`ahunt users add NAME` prints one). Every
`/v1` route acts on the token's own user. A label is acknowledged (201 new, 200 replaced) only
once Redis has fsynced it; while Redis is unavailable the API answers 503 with `Retry-After`,
and retrying is always safe (labels are idempotent per user and alert).
"""


def create_app(
    settings: FeedbackSettings,
    redis: Redis,
    producer: Producer | None,
    *,
    metrics: FeedbackMetrics | None = None,
    kafka: KafkaSource | None = None,
    new_producer: Callable[[], Producer] | None = None,
) -> FastAPI:
    """The API over ``redis`` (asyncio client) and ``producer`` (``None``: events stay in the
    outbox). ``metrics`` defaults to a fresh registry of this app's own; ``kafka`` is where
    ``/v1/me/stream`` reads user topics (``None``: that route answers 503); ``new_producer``
    replaces the producer after a failed publication (a broker restarted without its state)."""
    metrics = metrics or FeedbackMetrics(CollectorRegistry())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await _check_durability(app, settings, redis, metrics)
        warming = asyncio.create_task(asyncio.to_thread(warm_stamps))  # the desk's first stamp
        if producer is not None:
            app.state.publisher = OutboxPublisher(
                redis,
                Delivery(producer, settings.outbox_flush_timeout_s),
                settings.events_topic,
                metrics,
                batch=settings.outbox_batch,
                poll_s=settings.outbox_poll_s,
                new_producer=new_producer,
            )
            app.state.publisher.start()
        else:
            log.warning("no Kafka producer: feedback events wait in the Redis outbox")
        try:
            yield
        finally:
            app.state.streams.close()
            await asyncio.gather(warming, return_exceptions=True)
            if app.state.publisher is not None:
                await app.state.publisher.stop()
                app.state.publisher = None
            await redis.connection_pool.disconnect()

    app = FastAPI(
        title="ahunt feedback API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served offline by routes/desk.py
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.redis = redis
    app.state.metrics = metrics
    app.state.rate_limit = TokenBuckets(settings.rate_limit_per_s, settings.rate_limit_burst)
    app.state.token_cache = TokenCache(settings.auth_cache_s)
    app.state.auth_failures = TokenBuckets(
        settings.auth_failures_per_s, settings.auth_failures_burst
    )
    app.state.batcher = RedisBatcher(redis)
    # Label names are users' input: a bounded set of them become metric label values.
    app.state.class_series = BoundedValues(
        settings.metrics_other_classes, {*settings.metrics_classes, RESERVE}
    )
    app.state.publisher = None
    app.state.durable = None
    app.state.streams = StreamHub(
        kafka,
        settings.stream_max_per_user,
        settings.stream_max_total,
        settings.stream_heartbeat_s,
    )
    for router in ROUTERS:
        app.include_router(router)
    desk.install(app)
    app.openapi = lambda: _openapi_with_bearer(app)  # type: ignore[method-assign]

    def unavailable(reason: str) -> JSONResponse:
        metrics.store_errors.inc()
        return JSONResponse(
            {"detail": f"label store unavailable ({reason}): not acknowledged, retry later"},
            status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(settings.retry_after_s)},
        )

    async def on_redis_error(_request: Request, exc: Exception) -> JSONResponse:
        code = unavailable_reply(exc)
        if code is not None:
            return unavailable(code)
        if isinstance(exc, RedisConnectionError | RedisTimeoutError | storage.ProfileContention):
            return unavailable(type(exc).__name__)
        log.error("unexpected Redis error: %r", exc)
        return JSONResponse({"detail": "internal error"}, status.HTTP_500_INTERNAL_SERVER_ERROR)

    app.add_exception_handler(RedisError, on_redis_error)
    app.add_exception_handler(storage.ProfileContention, on_redis_error)
    # Added last = outermost: metrics see every answer, 413s included.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics)
    return app


async def _check_durability(
    app: FastAPI, settings: FeedbackSettings, redis: Redis, metrics: FeedbackMetrics
) -> None:
    """Labels are acknowledged as durable: say so loudly (or refuse) if Redis is not."""
    try:
        durable, how = await storage.redis_durability(redis)
        metrics.users.set(await redis.hlen(keys.USERS))
    except RedisError as exc:
        if settings.require_durable_redis:
            raise RuntimeError(f"cannot check Redis durability: {exc}") from exc
        log.error("Redis unreachable at startup (%s): answering 503 until it is back", exc)
        return
    app.state.durable = durable
    metrics.redis_durable.set(1 if durable else 0)
    if durable:
        log.info("Redis is durable (%s)", how)
        return
    message = (
        f"REDIS IS NOT DURABLE ({how}): acknowledged labels can be lost in a crash. Configure "
        "appendonly yes + appendfsync always, or set AHUNT_FEEDBACK_REQUIRE_DURABLE_REDIS=true "
        "to refuse to start."
    )
    if settings.require_durable_redis:
        raise RuntimeError(message)
    log.warning("!" * 20 + " " + message + " " + "!" * 20)


def _openapi_with_bearer(app: FastAPI) -> dict[str, Any]:
    """The schema, with the bearer scheme required on every ``/v1`` operation (the auth
    dependency reads the header itself, which is cheaper than FastAPI's security classes)."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            SCHEME: {
                "type": "http",
                "scheme": "bearer",
                "description": "a token from `ahunt users add NAME`",
            }
        }
        for path, operations in schema["paths"].items():
            if path.startswith("/v1/"):
                for operation in operations.values():
                    operation["security"] = [{SCHEME: []}]
                    operation.setdefault("responses", {}).setdefault(
                        "401", {"description": "missing, invalid or revoked token"}
                    )
                    operation["responses"].setdefault(
                        "429", {"description": "rate limit exceeded (see Retry-After)"}
                    )
                    operation["responses"].setdefault(
                        "503", {"description": "Redis unavailable (see Retry-After)"}
                    )
                    if "requestBody" in operation:
                        operation["responses"].setdefault(
                            "400", {"description": "the body is not UTF-8 JSON"}
                        )
                        operation["responses"].setdefault(
                            "413", {"description": "the body is over the size limit"}
                        )
        app.openapi_schema = schema
    return app.openapi_schema
