"""``GET /v1/me/stream``: your deliveries as Server-Sent Events, as the scorer publishes them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import Annotated, Literal

from confluent_kafka import KafkaException
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from services.common.users import user_topic
from services.feedback.auth import CurrentUser
from services.feedback.desk_models import StreamReady, StreamSkipped
from services.feedback.stream import (
    POLL_S,
    TOPIC_RETRY_S,
    Positions,
    StreamHub,
    StreamLimit,
    TopicRelay,
    alert_event,
    decode,
    format_event_id,
    parse_event_id,
)

log = logging.getLogger("ahunt.feedback.stream")
router = APIRouter(prefix="/v1/me", tags=["me"])
RETRY_MS = 3000  # how soon EventSource reconnects after the stream drops


async def resume_point(
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=6000,
            description="resume after this event (EventSource sends it by itself on reconnect)",
        ),
    ] = None,
    query: Annotated[
        str | None,
        Query(
            alias="last_event_id",
            max_length=6000,
            description="same as the Last-Event-ID header, for a client that cannot set headers",
        ),
    ] = None,
) -> Positions | None:
    """The positions to resume at, checked before the response starts (a bad id is a 422)."""
    text = last_event_id or query
    if text is None:
        return None
    try:
        return parse_event_id(text)
    except ValueError as exc:
        raise HTTPException(422, f"bad Last-Event-ID {text[:80]!r}: {exc}") from None


async def stream_slot(user: CurrentUser, request: Request) -> AsyncIterator[StreamHub]:
    """One of the bounded stream slots, held until the stream ends (refused before any byte
    of the response is sent, so a refusal is a plain 429/503)."""
    hub: StreamHub = request.app.state.streams
    try:
        hub.acquire(user)
    except StreamLimit as exc:
        raise HTTPException(exc.status, str(exc), {"Retry-After": "5"}) from None
    try:
        yield hub
    finally:
        hub.release(user)


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "`text/event-stream`. Events: `ready` (first; data StreamReady), "
            "`alert` (data StreamAlert, one per delivery), `skipped` (data StreamSkipped: an "
            "undecodable record), `relay_error` (the relay failed; reconnect). Every event's id "
            "is a resume point (`partition:offset,...`: next offset per partition). A comment line "
            "is sent after `AHUNT_FEEDBACK_STREAM_HEARTBEAT_S` without events."
        },
        422: {"description": "Last-Event-ID is not `partition:offset[,partition:offset...]`"},
        429: {"description": "too many open streams for this user (Retry-After)"},
        503: {"description": "no Kafka, shutting down, or the server's stream limit"},
    },
)
async def stream(
    user: CurrentUser,
    hub: Annotated[StreamHub, Depends(stream_slot)],
    resume: Annotated[Positions | None, Depends(resume_point)],
    start: Annotated[
        Literal["latest", "earliest"],
        Query(
            alias="from",
            description="without an event id: `latest` relays only what is published from now "
            "on, `earliest` everything your topic still holds",
        ),
    ] = "latest",
) -> AsyncIterable[ServerSentEvent]:
    """Your own deliveries (topic `ahunt.user.<you>`), relayed as they are published, with the
    same token as every route (or the desk's session cookie). Resume exactly where you left off
    with `Last-Event-ID`; the connection stays open (heartbeat comments) until you close it or
    the server shuts down."""
    assert hub.source is not None  # stream_slot refused otherwise
    topic = user_topic(user)
    positions = resume
    relay = TopicRelay(hub.source, topic)
    try:
        assigned = await relay.assign(positions, start)
        if assigned is not None:
            positions = assigned
        yield ServerSentEvent(
            event="ready",
            id=format_event_id(positions or {}),
            retry=RETRY_MS,
            data=StreamReady(topic=topic, positions=positions or {}, resumed=resume is not None),
        )
        idle_since = time.monotonic()
        last_look = time.monotonic()
        while not hub.closing.is_set():
            if not relay.assigned:  # the topic does not exist yet: look again now and then
                if time.monotonic() - last_look >= TOPIC_RETRY_S:
                    last_look = time.monotonic()
                    assigned = await relay.assign(positions or {}, "earliest")
                    if assigned is not None:
                        positions = assigned
                messages = []
                await asyncio.sleep(POLL_S)
            else:
                messages = list(await relay.poll())
            for m in messages:
                partition, offset = int(m.partition() or 0), int(m.offset() or 0)
                positions = {**(positions or {}), partition: offset + 1}
                if relay.published_before_start(m):
                    continue
                resume_at = format_event_id(positions)
                try:
                    event = ServerSentEvent(
                        event="alert", id=resume_at, data=alert_event(decode(m))
                    )
                except Exception as exc:  # any undecodable record: say so, keep going
                    reason = f"{type(exc).__name__}: {exc}"[:300]
                    log.warning("%s: skipped %s:%s (%s)", topic, partition, offset, reason)
                    skipped = StreamSkipped(partition=partition, offset=offset, reason=reason)
                    event = ServerSentEvent(event="skipped", id=resume_at, data=skipped)
                yield event
                idle_since = time.monotonic()
            if time.monotonic() - idle_since >= hub.heartbeat_s:
                yield ServerSentEvent(comment="heartbeat")
                idle_since = time.monotonic()
    except (
        RuntimeError,
        KafkaException,
    ) as exc:  # the broker failed us: tell the client, which reconnects
        log.warning("stream of %s ended: %s", user, exc)
        yield ServerSentEvent(event="relay_error", data={"detail": str(exc)})
    finally:
        relay.close()
