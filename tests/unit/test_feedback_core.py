"""The feedback API's pure parts: answers, events, pages, limits, request models, settings."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from services.common import schemas
from services.common.cutouts import _tiny_fits
from services.common.labels import LabelRecord
from services.common.settings import RedisSettings
from services.common.users import UserProfile
from services.feedback.api_models import FeedbackIn, InterestDoc
from services.feedback.auth import TokenCache
from services.feedback.events import event_message, outbox_entry
from services.feedback.handler import (
    EVENT_SCHEMA,
    apply_answer,
    cutouts_png,
    feedback_event,
    newest_models,
    page_labels,
)
from services.feedback.ratelimit import TokenBuckets
from services.feedback.settings import FeedbackSettings
from services.feedback.tokens import new_token, token_hash


def test_answers_follow_interest_semantics() -> None:
    p = UserProfile(name="a", weights={"sn": 0.3, "agn": 2.0})
    assert apply_answer(p, "sn", True).weights == {"sn": 1.0, "agn": 2.0}  # type: ignore[union-attr]
    assert apply_answer(p, "agn", True) is None  # already above raise_to: nothing to write
    assert apply_answer(p, "agn", False).weights == {"sn": 0.3, "agn": 0.0}  # type: ignore[union-attr]
    assert apply_answer(p, "new", None) is None
    assert apply_answer(p, "new", False).weights["new"] == 0.0  # type: ignore[union-attr]


def test_event_round_trips_through_its_avro_schema() -> None:
    record = LabelRecord(
        user="u",
        alert_id="12",
        label="SN Ia",
        interesting=False,
        comment="é",
        model_version="m1",
        labelled_at=10.0,
    )
    event = feedback_event("undo", record, event_id="e", at=11.0)
    message = event_message("ahunt.feedback", outbox_entry(event).encode())
    assert message.key == b"u" and message.topic == "ahunt.feedback"
    decoded = schemas.decode(EVENT_SCHEMA, message.value)
    assert decoded["kind"] == "undo" and decoded["label"] == "sn_ia"
    assert decoded["comment"] == "é" and decoded["interesting"] is False
    assert decoded["labelled_at"].timestamp() == 10.0 and decoded["event_time"].timestamp() == 11.0
    assert dict(message.headers)["ahunt-event-id"] == b"e"


def test_event_without_a_user_cannot_be_encoded() -> None:
    with pytest.raises((KeyError, ValueError, TypeError)):
        event_message("t", b'{"event_id": "x"}')


def test_pages_are_newest_first_and_complete() -> None:
    records = [
        LabelRecord(user="u", alert_id=str(i), label="a" if i % 2 else "b", labelled_at=i)
        for i in range(7)
    ]
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = page_labels(records, None, 3, offset)
        seen += [r.alert_id for r in page.items]
        offset = page.next_offset
    assert seen == [str(i) for i in range(6, -1, -1)]
    assert [r.alert_id for r in page_labels(records, "a", 10, 0).items] == ["5", "3", "1"]
    assert page_labels(records, None, 3, 100).items == []


def test_token_buckets_refill_at_the_configured_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=4, clock=lambda: now[0])
    assert [buckets.take("u") for _ in range(4)] == [0.0] * 4
    assert buckets.take("u") == pytest.approx(0.5)
    now[0] = 0.5
    assert buckets.take("u") == 0.0
    assert buckets.take("other") == 0.0  # per token
    assert TokenBuckets(rate=0.0, burst=1).take("u") == 0.0  # disabled


def test_token_cache_expires_and_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("services.feedback.auth.time.monotonic", lambda: now[0])
    cache = TokenCache(ttl_s=5.0, max_entries=2)
    cache.put("h1", "alice")
    assert cache.get("h1") == "alice"
    now[0] = 106.0
    assert cache.get("h1") is None
    cache.put("h2", "b")
    cache.put("h3", "c")
    cache.put("h4", "d")  # past the bound: cleared, then added
    assert cache.get("h2") is None and cache.get("h4") == "d"
    off = TokenCache(ttl_s=0.0)
    off.put("h", "u")
    assert off.get("h") is None


def test_tokens_are_random_and_stored_as_sha256() -> None:
    a, b = new_token(), new_token()
    assert a != b and a.startswith("ahunt_") and len(a) >= 6 + 43  # 32 random bytes
    assert len(token_hash(a)) == 64 and token_hash(a) != token_hash(b)


def test_feedback_request_normalises_and_bounds_its_fields() -> None:
    body = FeedbackIn(alert_id="123", label="  Not  Interesting ")
    assert body.label == "not_interesting" and body.interesting is None
    for bad in (
        {"alert_id": "1", "label": "é"},
        {"alert_id": "1", "label": ""},
        {"alert_id": "-1", "label": "x"},
        {"alert_id": "1", "label": "x", "user": "bob"},  # the user comes from the token only
    ):
        with pytest.raises(ValidationError):
            FeedbackIn.model_validate(bad)


def test_interest_document_is_the_profile_minus_the_name() -> None:
    profile = UserProfile(name="a", weights={"sn": 1.0}, reserve_share=0.1)
    doc = InterestDoc.of(profile)
    assert doc.profile("a") == profile
    with pytest.raises(ValidationError):
        InterestDoc.model_validate({"weights": {"sn": float("nan")}})
    with pytest.raises(ValidationError):
        InterestDoc.model_validate({"strategy": {"top": 0.0, "random": 0.0}})


def test_newest_model_per_survey() -> None:
    metas: list[dict[str, Any]] = [
        {"survey": "ztf", "model_version": "a", "classes": ["reserve"], "cached_at": 5},
        {"survey": "rubin", "model_version": "r", "classes": ["reserve", "x"], "cached_at": 1},
        {"survey": "ztf", "model_version": "b", "classes": ["reserve", "y"], "cached_at": 9},
        {"model_version": "?"},
    ]
    assert newest_models(metas) == {
        "rubin": {"version": "r", "classes": ["reserve", "x"]},
        "ztf": {"version": "b", "classes": ["reserve", "y"]},
    }


def test_cutouts_png_from_originals_or_training_stamp() -> None:
    stamp = _tiny_fits(np.arange(12, dtype=">f4").reshape(3, 4))
    png = cutouts_png([stamp, b"not fits", None], None)
    assert png is not None and png[:4] == b"\x89PNG"
    preprocessed = cutouts_png([None, None, None], np.zeros((3, 5, 5), np.float32))
    assert preprocessed is not None and preprocessed[:4] == b"\x89PNG"
    assert cutouts_png([None, None, None], None) is None


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AHUNT_FEEDBACK_PORT", "9999")
    monkeypatch.setenv("AHUNT_FEEDBACK_RATE_LIMIT_PER_S", "3.5")
    monkeypatch.setenv("REDIS_URL", "redis://example:6379/2")
    s = FeedbackSettings()
    assert (s.port, s.rate_limit_per_s, RedisSettings().url, s.workers) == (
        9999,
        3.5,
        "redis://example:6379/2",
        1,
    )
    monkeypatch.delenv("REDIS_URL")
    monkeypatch.delenv("AHUNT_FEEDBACK_PORT")
    defaults = FeedbackSettings()
    assert RedisSettings().url is None and defaults.port == 8080
    assert defaults.events_topic == "ahunt.feedback" and not defaults.require_durable_redis


def test_feedback_service_does_not_import_torch() -> None:
    code = (
        "import sys, services.feedback.app, services.feedback.serve, services.feedback.cli, "
        "services.feedback.__main__; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
