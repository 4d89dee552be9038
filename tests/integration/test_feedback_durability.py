"""Durability: labels acknowledged by the API survive a kill -9 of Redis (AOF, fsync always);
while Redis is down the API answers 503 with Retry-After and a retried label is not lost; a
Redis that does not fsync every write is reported loudly, or refused."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common import keys, labels, store
from services.common.embedded import EmbeddedRedis
from services.feedback.tokens import add_user
from tests.integration.test_feedback_support import TestClient, bearer, make_app, seed_alert


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own (AOF in tmp_path, appendfsync always) that it may kill."""
    server = EmbeddedRedis(directory=tmp_path / "redis")
    with server:
        yield server


def kill_9(server: EmbeddedRedis) -> None:
    assert server.process is not None
    server.process.kill()  # SIGKILL: no shutdown, no final AOF flush
    server.process.wait()
    server.process = None


def test_labels_survive_kill_9_of_redis_and_503_until_it_is_back(
    private_redis: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    admin = store.connect(private_redis.url)
    token = bearer(add_user(admin, "alice"))
    for alert_id in ("1", "2", "3"):
        seed_alert(admin, alert_id, delivered_to=["alice"])
    app, _ = make_app(private_redis.url, retry_after_s=2)
    with TestClient(app) as http:
        for alert_id in ("1", "2"):
            r = http.post("/v1/feedback", json={"alert_id": alert_id, "label": "sn"}, headers=token)
            assert r.status_code == 201, r.text
        kill_9(private_redis)

        # Down: never a silent success, always 503 + Retry-After, counted.
        body = {"alert_id": "3", "label": "agn", "interesting": True}
        r = http.post("/v1/feedback", json=body, headers=token)
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "2"
        assert "not acknowledged" in r.json()["detail"]
        assert http.get("/v1/feedback", headers=token).status_code == 503
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.headers["retry-after"] == "2"
        assert http.get("/healthz").status_code == 200  # the process itself is fine
        metrics = http.get("/metrics").text
        assert "ahunt_feedback_store_errors_total 2.0" in metrics

        private_redis.start()  # same directory, same port: Redis replays its AOF
        # The client retries after the 503: success, and the record is there.
        r = http.post("/v1/feedback", json=body, headers=token)
        assert r.status_code in (200, 201), r.text
        assert http.get("/readyz").status_code == 200

    after = store.connect(private_redis.url)
    stored = {r.alert_id: r.label for r in labels.user_labels(after, "alice")}
    assert stored == {"1": "sn", "2": "sn", "3": "agn"}
    assert labels.training_example(after, "1") is not None  # the stamp copy survived too
    assert {p.name: p for p in store.load_profiles(after)}["alice"].weights == {"agn": 1.0}
    assert after.llen(keys.FEEDBACK_OUTBOX) == 3  # no producer: every event still queued


def test_restarted_api_and_redis_keep_every_label(private_redis: EmbeddedRedis) -> None:
    admin = store.connect(private_redis.url)
    token = bearer(add_user(admin, "bob"))
    for i in range(20):
        seed_alert(admin, str(100 + i))
    app, _ = make_app(private_redis.url)
    with TestClient(app) as http:
        for i in range(20):
            body = {"alert_id": str(100 + i), "label": f"c{i % 3}"}
            assert http.post("/v1/feedback", json=body, headers=token).status_code == 201
    kill_9(private_redis)
    private_redis.start()
    app, _ = make_app(private_redis.url)  # a new API process, same Redis directory
    with TestClient(app) as http:
        listed = http.get("/v1/feedback?limit=100", headers=token).json()
    assert listed["total"] == 20
    assert labels.revision(store.connect(private_redis.url)) == 20


def test_redis_without_fsync_always_is_reported_or_refused(
    private_redis: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    admin = store.connect(private_redis.url)
    admin.config_set("appendfsync", "everysec")  # may lose the last second on a crash
    strict, _ = make_app(private_redis.url, require_durable_redis=True)
    with pytest.raises(RuntimeError, match="NOT DURABLE"), TestClient(strict):
        pass
    lenient, _ = make_app(private_redis.url)
    with caplog.at_level(logging.WARNING, logger="ahunt.feedback"), TestClient(lenient) as http:
        assert http.get("/readyz").json()["durable"] is False
        assert "ahunt_feedback_redis_durable 0.0" in http.get("/metrics").text
    assert any(
        "REDIS IS NOT DURABLE" in r.getMessage() and "appendfsync=everysec" in r.getMessage()
        for r in caplog.records
    )
