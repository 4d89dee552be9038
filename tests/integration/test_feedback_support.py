"""Helpers shared by the feedback API tests (this module holds no tests): seeding the scorer's
cache the way the scorer writes it, and building an app against a real Redis."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from confluent_kafka import Producer
from fastapi import FastAPI
from redis.asyncio import Redis

from services.common import keys, store
from services.feedback.app import create_app
from services.feedback.serve import redis_client
from services.feedback.settings import FeedbackSettings

with warnings.catch_warnings():  # newer Starlette prefers the httpx2 fork; httpx works the same
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

__all__ = ["TestClient", "bearer", "make_app", "seed_alert"]

CLASSES = ["reserve", "normal"]


def seed_alert(
    client: Any,
    alert_id: str,
    *,
    cutouts: Sequence[bytes] = (b"", b"", b""),
    delivered_to: Sequence[str] = (),
    score: float = 0.5,
    reason: str = "top",
    stamp: np.ndarray | None = None,
    model_version: str = "ztf-0001",
    classes: Sequence[str] = CLASSES,
) -> np.ndarray:
    """Cache an alert (and its deliveries) exactly as the scorer does; returns its stamp."""
    stamp = (
        np.random.default_rng(int(alert_id) % 2**32).normal(size=(3, 63, 63)).astype(np.float32)
        if stamp is None
        else stamp
    )
    meta = {
        "alert_id": alert_id,
        "object_id": f"ZTF{alert_id}",
        "survey": "ztf",
        "schema_version": "4.02",
        "ra": 150.0,
        "dec": 2.5,
        "magnitude": 18.5,
        "observed_mjd": 60000.5,
        "model_version": model_version,
        "classes": list(classes),
        "probs": [round(1.0 / len(classes), 6)] * len(classes),
        "novelty": 0.7,
        "cached_at": 1_700_000_000.0,
        "background": not delivered_to,
    }
    pipe = client.pipeline(transaction=False)
    store.cache_alert(pipe, alert_id, meta, stamp, list(cutouts), 3_600)
    for user in delivered_to:
        delivery = {
            "score": score,
            "reason": reason,
            "model_version": model_version,
            "delivered_at": 1_700_000_001.0,
        }
        store.record_delivery(pipe, user, alert_id, delivery, 3_600, 500)
    pipe.execute()
    return stamp


def make_app(
    redis_url: str, producer: Producer | None = None, **overrides: Any
) -> tuple[FastAPI, Redis]:
    defaults = {"rate_limit_per_s": 0.0, "auth_cache_s": 0.0, "auth_failures_per_s": 0.0}
    new_producer = overrides.pop("new_producer", None)
    settings = FeedbackSettings(**{**defaults, **overrides})
    client = redis_client(redis_url, settings)
    return create_app(settings, client, producer, new_producer=new_producer), client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def outbox(client: Any) -> list[dict[str, Any]]:
    """The queued feedback events, oldest first."""
    return [json.loads(e) for e in reversed(client.lrange(keys.FEEDBACK_OUTBOX, 0, -1))]
