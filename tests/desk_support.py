"""Helpers shared by the desk's tests (this module holds no tests): user-topic records as the
scorer publishes them, and a Server-Sent Events reader over httpx."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from services.common import schemas
from services.common.alerts import Alert
from services.common.kafka import Delivery, OutMessage, producer
from services.common.settings import KafkaSettings
from services.common.users import user_topic
from services.feedback.app import create_app
from services.feedback.serve import ThreadedServer, redis_client, serve_in_thread
from services.feedback.settings import FeedbackSettings
from services.feedback.stream import KafkaSource

CLASSES = ("reserve", "normal")


def user_alert(alert: Alert, user: str, score: float = 0.5, reason: str = "top") -> bytes:
    """``alert`` as the scorer publishes it on ``ahunt.user.<user>`` (user_alert.v1)."""
    now = int(time.time() * 1000)
    record = {
        "alert_id": alert.alert_id,
        "object_id": alert.object_id,
        "survey": alert.survey,
        "user": user,
        "score": score,
        "reason": reason,
        "class_probabilities": {"reserve": 0.3, "normal": 0.7},
        "novelty": 1.2,
        "model_version": "ztf-0001",
        "ra": alert.ra,
        "dec": alert.dec,
        "magnitude": alert.magnitude,
        "alert_time": now - 60_000,
        "scored_at": now,
        "published_at": now,
        "cutout_science": alert.cutout_bytes[0],
        "cutout_template": alert.cutout_bytes[1],
        "cutout_difference": alert.cutout_bytes[2],
    }
    return schemas.encode(schemas.USER_ALERT, record)


def publish(settings: KafkaSettings, bootstrap: str, user: str, payloads: list[bytes]) -> None:
    """Produce to the user's topic (one key, so one partition and this order) and wait for the
    broker's acknowledgement."""
    delivery = Delivery(producer(settings, bootstrap, **{"message.max.bytes": 10_000_000}))
    try:
        delivery.send([OutMessage(user_topic(user), p, key=user.encode()) for p in payloads])
    finally:
        delivery.producer.close()


def serve_desk(
    redis_url: str, kafka: KafkaSettings, bootstrap: str, **overrides: Any
) -> ThreadedServer:
    """The feedback API over real HTTP with a Kafka source for the stream (no rate limit, no
    token cache, so tests see revocations at once)."""
    settings = FeedbackSettings(**{"rate_limit_per_s": 0.0, "auth_cache_s": 0.0, **overrides})
    app = create_app(
        settings, redis_client(redis_url, settings), None, kafka=KafkaSource(kafka, bootstrap)
    )
    return serve_in_thread(app)


@dataclass
class Event:
    event: str
    data: Any
    id: str | None


def events(
    response: httpx.Response, comments: list[str] | None = None, deadline_s: float = 30.0
) -> Iterator[Event]:
    """Parse a ``text/event-stream`` response as it arrives (comment lines go to ``comments``);
    a stream still open after ``deadline_s`` fails the test (heartbeats would keep it forever)."""
    deadline = time.monotonic() + deadline_s
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the stream was still open after {deadline_s} s")
        if line == "":
            if "data" in fields or "event" in fields:
                data = fields.get("data")
                yield Event(
                    fields.get("event", "message"),
                    None if data is None else json.loads(data),
                    fields.get("id"),
                )
            fields = {}
        elif line.startswith(":"):
            if comments is not None:
                comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
