"""The feedback API against a real Redis: identity and isolation, labels (idempotent, undo,
validation, 404), interest, questions, alerts and cutouts, limits, metrics and the users CLI."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import redis
from fastapi.routing import APIRoute
from starlette.routing import Route

from services.cli import main as ahunt
from services.common import keys, labels, store
from services.common.alerts import Alert
from services.common.embedded import EmbeddedRedis
from services.common.labels import MAX_COMMENT, LabelRecord, resolve_training_labels
from services.common.values import stamp_from_bytes
from services.feedback.app import ROUTERS
from services.feedback.tokens import add_user
from tests.integration.test_feedback_support import (
    TestClient,
    bearer,
    make_app,
    outbox,
    seed_alert,
)

PUBLIC = {
    *("/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect", "/openapi.json"),
    *("/", "/desk"),  # the desk page (its data comes from /v1 with the same auth)
}


@dataclass
class Api:
    http: Any  # TestClient
    redis: redis.Redis
    alice: dict[str, str]  # auth headers
    bob: dict[str, str]
    app: Any


@pytest.fixture
def api(
    redis_server: EmbeddedRedis, redis_client: redis.Redis, ztf_alerts: list[Alert]
) -> Iterator[Api]:
    alice, bob = add_user(redis_client, "alice"), add_user(redis_client, "bob")
    cutouts = ztf_alerts[0].cutout_bytes
    seed_alert(redis_client, "1001", delivered_to=["alice"], score=0.9, cutouts=cutouts)
    seed_alert(redis_client, "1002", delivered_to=["alice"], score=0.7, reason="uncertain")
    seed_alert(redis_client, "1003", delivered_to=["alice"], score=0.8, reason="random")
    seed_alert(redis_client, "2001", delivered_to=["bob"], score=0.6)
    seed_alert(redis_client, "3001")  # cached as background, delivered to nobody
    app, _ = make_app(redis_server.url)
    with TestClient(app) as http:
        yield Api(http, redis_client, bearer(alice), bearer(bob), app)


def post(api: Api, who: dict[str, str], **body: Any) -> Any:
    return api.http.post("/v1/feedback", json=body, headers=who)


def test_every_v1_route_requires_a_valid_token(api: Api) -> None:
    # The app's own routes (docs) and every route of the routers it includes (newer FastAPI
    # versions keep included routers nested in app.routes).
    routes = [
        r
        for r in (*api.app.routes, *(r for rt in ROUTERS for r in rt.routes))
        if isinstance(r, APIRoute | Route)
    ]
    assert {r.path for r in routes if not r.path.startswith("/v1/")} == PUBLIC
    checked = 0
    for route in routes:
        if not route.path.startswith("/v1/"):
            continue
        assert isinstance(route, APIRoute) and route.methods
        path = route.path.replace("{alert_id}", "1001")
        for method in route.methods:
            for headers in ({}, bearer("ahunt_not-a-token"), {"Authorization": "Basic eDp5"}):
                r = api.http.request(method, path, headers=headers, json={})
                assert r.status_code == 401, (method, path, headers, r.text)
                assert r.headers["www-authenticate"] == "Bearer"
            checked += 1
    assert checked >= 10  # me, interest x2, questions, feedback x3, classes, alert, cutouts


def test_label_is_created_then_replaced_never_duplicated(api: Api) -> None:
    first = post(api, api.alice, alert_id="1001", label="SN Ia", comment="nice")
    assert first.status_code == 201, first.text
    assert first.json()["created"] is True and first.json()["label"] == "sn_ia"
    again = post(api, api.alice, alert_id="1001", label="artefact", interesting=False)
    assert again.status_code == 200, again.text
    assert again.json()["created"] is False
    assert again.json()["revision"] == first.json()["revision"] + 1
    records = labels.user_labels(api.redis, "alice")
    assert [(r.alert_id, r.label, r.interesting) for r in records] == [("1001", "artefact", False)]
    assert records[0].model_version == "ztf-0001" and records[0].survey == "ztf"
    # The stamp left the TTL cache for the permanent training set, bit for bit.
    example = labels.training_example(api.redis, "1001")
    assert example is not None
    raw_stamp: Any = api.redis.hget(keys.alert_key("1001"), "stamp")
    cached = stamp_from_bytes(raw_stamp)
    np.testing.assert_array_equal(example[0], cached)
    assert api.redis.ttl(keys.train_key("1001")) == -1  # no expiry
    assert [e["label"] for e in outbox(api.redis)] == ["sn_ia", "artefact"]


def test_label_survives_cache_expiry_once_in_training_set(api: Api) -> None:
    assert post(api, api.alice, alert_id="1002", label="agn").status_code == 201
    api.redis.delete(keys.alert_key("1002"))  # the scorer's cache entry expired
    r = post(api, api.bob, alert_id="1002", label="agn")
    assert r.status_code == 201, r.text  # still labellable: it is in the training set
    assert labels.training_example(api.redis, "1002") is not None


def test_unknown_or_expired_alert_is_404_with_a_message(api: Api) -> None:
    r = post(api, api.alice, alert_id="424242", label="sn")
    assert r.status_code == 404
    assert "unknown or expired" in r.json()["detail"]
    api.redis.delete(keys.alert_key("1003"))  # expired before anyone labelled it
    assert post(api, api.alice, alert_id="1003", label="sn").status_code == 404
    assert labels.user_labels(api.redis, "alice") == []
    assert outbox(api.redis) == []


def test_users_cannot_reach_each_others_data(api: Api) -> None:
    assert post(api, api.alice, alert_id="1001", label="lens", interesting=True).status_code == 201
    # Bob sees none of Alice's labels and cannot undo them.
    assert api.http.get("/v1/feedback", headers=api.bob).json()["total"] == 0
    assert api.http.delete("/v1/feedback/1001", headers=api.bob).status_code == 404
    assert labels.get_label(api.redis, "alice", "1001") is not None
    # Alerts delivered to Alice are invisible to Bob (and vice versa).
    assert api.http.get("/v1/alerts/1001", headers=api.bob).status_code == 404
    assert api.http.get("/v1/alerts/1001/cutouts.png", headers=api.bob).status_code == 404
    assert api.http.get("/v1/alerts/2001", headers=api.alice).status_code == 404
    assert api.http.get("/v1/alerts/3001", headers=api.alice).status_code == 404
    questions = api.http.get("/v1/me/questions", headers=api.bob).json()["items"]
    assert [q["alert_id"] for q in questions] == ["2001"]
    # Bob's interest is his own.
    r = api.http.put("/v1/me/interest", json={"weights": {"lens": 0.0}}, headers=api.bob)
    assert r.status_code == 200
    profiles = {p.name: p for p in store.load_profiles(api.redis)}
    assert profiles["alice"].weights == {"lens": 1.0}
    assert profiles["bob"].weights == {"lens": 0.0}
    assert api.http.get("/v1/me", headers=api.bob).json()["user"] == "bob"
    # Conflicting labels of one alert are kept per user; training uses the documented rule.
    assert post(api, api.bob, alert_id="1001", label="artefact").status_code == 201
    assert labels.get_label(api.redis, "alice", "1001").label == "lens"  # type: ignore[union-attr]
    resolved = resolve_training_labels(labels.all_labels(api.redis))
    assert resolved == {"1001": "artefact"}  # one vote each: the latest label wins


def test_undo_removes_the_label_and_queues_an_undo_event(api: Api) -> None:
    created = post(api, api.alice, alert_id="1001", label="sn").json()
    assert api.http.delete("/v1/feedback/1001", headers=api.alice).status_code == 204
    assert labels.get_label(api.redis, "alice", "1001") is None
    assert labels.revision(api.redis) == created["revision"] + 1
    assert api.http.get("/v1/feedback", headers=api.alice).json()["items"] == []
    assert api.http.delete("/v1/feedback/1001", headers=api.alice).status_code == 404
    assert [(e["kind"], e["label"]) for e in outbox(api.redis)] == [("label", "sn"), ("undo", "sn")]
    assert post(api, api.alice, alert_id="1001", label="sn").status_code == 201  # new again


@pytest.mark.parametrize(
    "body",
    [
        {"alert_id": "1001", "label": "sn", "extra": 1},  # unknown field
        {"alert_id": "1001", "label": "!!"},  # invalid class name
        {"alert_id": "1001", "label": "x" * 65},  # too long once normalised
        {"alert_id": "1001", "label": "sn", "comment": "c" * (MAX_COMMENT + 1)},
        {"alert_id": "10 01", "label": "sn"},  # not an alert id
        {"alert_id": "1001"},  # no label
        {"alert_id": "1001", "label": "sn", "interesting": "maybe"},
    ],
)
def test_invalid_feedback_is_422(api: Api, body: dict[str, Any]) -> None:
    r = post(api, api.alice, **body)
    assert r.status_code == 422, r.text
    assert labels.user_labels(api.redis, "alice") == []


@pytest.mark.parametrize(
    "body",
    [
        {"weights": {"sn": -1.0}},
        {"weights": {"sn": 1.0}, "colour": "blue"},
        {"weights": {"not a/class": 1.0}},
        {"weights": {"SN": 1.0}},  # interest documents use canonical names
        {"strategy": {"top": 0.0}},
        {"strategy": {"sideways": 1.0}},
        {"reserve_share": 1.5},
        {"budget": {"alerts": -1}},
        {"budget": {"alerts": 5, "per": "night"}},
        {"filters": {"min_magnitude": 20, "max_magnitude": 18}},
    ],
)
def test_invalid_interest_is_422_and_changes_nothing(api: Api, body: dict[str, Any]) -> None:
    before = api.redis.hget(keys.USERS, "alice")
    r = api.http.put("/v1/me/interest", json=body, headers=api.alice)
    assert r.status_code == 422, r.text
    assert api.redis.hget(keys.USERS, "alice") == before


def test_interest_is_the_profile_the_scorer_reads(api: Api) -> None:
    doc = {
        "weights": {"sn_ia": 2.0, "reserve": 0.5},
        "reserve_share": 0.3,
        "strategy": {"top": 0.5, "random": 0.5},
        "budget": {"alerts": 7, "period": "hour"},
        "filters": {"cone": {"ra": 10.0, "dec": -5.0, "radius": 2.0}, "surveys": ["ztf"]},
    }
    r = api.http.put("/v1/me/interest", json=doc, headers=api.alice)
    assert r.status_code == 200, r.text
    assert r.json()["weights"] == {"sn_ia": 2.0, "reserve": 0.5}
    assert api.http.get("/v1/me/interest", headers=api.alice).json() == r.json()
    profile = {p.name: p for p in store.load_profiles(api.redis)}["alice"]
    assert profile.weights == {"sn_ia": 2.0, "reserve": 0.5}
    assert profile.budget.alerts == 7 and profile.filters.cone is not None
    me = api.http.get("/v1/me", headers=api.alice).json()
    assert me["topic"] == "ahunt.user.alice" and me["budget"] == {"alerts": 7, "period": "hour"}


def test_answers_raise_or_zero_a_class_weight(api: Api) -> None:
    def weights() -> dict[str, float]:
        return {p.name: p for p in store.load_profiles(api.redis)}["alice"].weights

    r = post(api, api.alice, alert_id="1001", label="Lens", interesting=True)
    assert r.json()["interest_changed"] is True
    assert weights() == {"lens": 1.0}
    r = post(api, api.alice, alert_id="1002", label="lens", interesting=True)
    assert r.json()["interest_changed"] is False  # already interesting: no profile write
    post(api, api.alice, alert_id="1003", label="bogus", interesting=False)
    assert weights() == {"lens": 1.0, "bogus": 0.0}  # known to the model, never shown
    post(api, api.alice, alert_id="1001", label="lens", interesting=None)
    assert weights() == {"lens": 1.0, "bogus": 0.0}
    classes = api.http.get("/v1/classes", headers=api.alice).json()
    by_name = {c["name"]: c for c in classes["classes"]}
    assert by_name["lens"]["labels"] == 2 and by_name["bogus"]["labels"] == 1
    assert by_name["normal"]["in_model"] is True and by_name["lens"]["in_model"] is False
    assert classes["models"]["ztf"] == {"version": "ztf-0001", "classes": ["reserve", "normal"]}
    # Classes only in alice's labels are hers until a model learns them (docs/SECURITY.md).
    bobs = api.http.get("/v1/classes", headers=api.bob).json()
    assert {c["name"] for c in bobs["classes"]} == {"reserve", "normal"}
    assert all(c["labels"] == 0 for c in bobs["classes"])
    me = api.http.get("/v1/me", headers=api.alice).json()
    assert me["labels"] == {"total": 3, "by_class": {"lens": 2, "bogus": 1}}


def test_feedback_list_is_paginated_and_filtered(api: Api) -> None:
    for alert_id, label in (("1001", "sn"), ("1002", "agn"), ("1003", "sn"), ("3001", "sn")):
        assert post(api, api.alice, alert_id=alert_id, label=label).status_code == 201
    page = api.http.get("/v1/feedback?limit=2&label=SN", headers=api.alice).json()
    assert page["total"] == 3 and page["next_offset"] == 2
    assert [i["alert_id"] for i in page["items"]] == ["3001", "1003"]  # newest first
    rest = api.http.get("/v1/feedback?limit=2&offset=2&label=sn", headers=api.alice).json()
    assert [i["alert_id"] for i in rest["items"]] == ["1001"] and rest["next_offset"] is None
    assert api.http.get("/v1/feedback?label=no%20way!", headers=api.alice).status_code == 422
    assert api.http.get("/v1/feedback?limit=0", headers=api.alice).status_code == 422


def test_questions_are_the_best_unlabelled_candidates(api: Api) -> None:
    items = api.http.get("/v1/me/questions?limit=2", headers=api.alice).json()["items"]
    assert [(q["alert_id"], q["reason"]) for q in items] == [("1001", "top"), ("1003", "random")]
    post(api, api.alice, alert_id="1001", label="sn")
    api.redis.delete(keys.alert_key("1003"))  # expired: can no longer be labelled
    items = api.http.get("/v1/me/questions", headers=api.alice).json()["items"]
    assert [q["alert_id"] for q in items] == ["1002"]
    assert items[0]["score"] == pytest.approx(0.7) and items[0]["alert_url"] == "/v1/alerts/1002"


def test_alert_view_and_cutouts_png(api: Api) -> None:
    post(api, api.alice, alert_id="1001", label="sn")
    alert = api.http.get("/v1/alerts/1001", headers=api.alice).json()
    assert alert["score"] == pytest.approx(0.9) and alert["reason"] == "top"
    assert alert["class_probabilities"] == {"reserve": 0.5, "normal": 0.5}
    assert alert["object_id"] == "ZTF1001" and alert["cached"] is True
    assert alert["your_label"]["label"] == "sn"
    r = api.http.get("/v1/alerts/1001/cutouts.png", headers=api.alice)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["x-ahunt-cutouts"] == "original"
    width, height = png_size(r.content)
    assert (width, height) == (3 * 63 * 4 + 2 * 4, 63 * 4)  # three real 63x63 stamps, x4
    # Once the cache expires, the training set's preprocessed stamp is shown instead.
    api.redis.delete(keys.alert_key("1001"))
    r = api.http.get("/v1/alerts/1001/cutouts.png", headers=api.alice)
    assert r.status_code == 200 and r.headers["x-ahunt-cutouts"] == "preprocessed"
    assert api.http.get("/v1/alerts/1001", headers=api.alice).json()["cached"] is True
    api.redis.delete(keys.alert_key("1002"))  # expired and never labelled: no picture left
    assert api.http.get("/v1/alerts/1002/cutouts.png", headers=api.alice).status_code == 404


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_rate_limit_answers_429_with_retry_after(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    token = add_user(redis_client, "eve")
    app, _ = make_app(redis_server.url, rate_limit_per_s=0.5, rate_limit_burst=3)
    with TestClient(app) as http:
        codes = [http.get("/v1/me", headers=bearer(token)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = http.get("/v1/me", headers=bearer(token))
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert http.get("/healthz").status_code == 200  # operators are not limited


def test_request_body_limit_answers_413(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    token = add_user(redis_client, "mallory")
    seed_alert(redis_client, "1001")
    app, _ = make_app(redis_server.url, max_body_bytes=1024)
    body = {"alert_id": "1001", "label": "sn", "comment": "x" * 1500}
    with TestClient(app) as http:
        r = http.post("/v1/feedback", json=body, headers=bearer(token))
        assert r.status_code == 413, r.text

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            yield b'{"alert_id": "1001", "label": "sn", "comment": "'
            for _ in range(10):
                yield b"y" * 200
            yield b'"}'

        r = http.post("/v1/feedback", content=chunks(), headers=bearer(token))
        assert r.status_code == 413, r.text
        assert labels.user_labels(redis_client, "mallory") == []
        ok = http.post("/v1/feedback", json={**body, "comment": "short"}, headers=bearer(token))
        assert ok.status_code == 201
        metrics = http.get("/metrics").text
    assert (
        'ahunt_feedback_requests_total{method="POST",route="/v1/feedback",status="413"} 2.0'
        in metrics
    )


def test_metrics_have_the_fixed_names_and_route_templates(api: Api) -> None:
    post(api, api.alice, alert_id="1001", label="SN Ia")
    post(api, api.alice, alert_id="1002", label="sn_ia")
    api.http.delete("/v1/feedback/1002", headers=api.alice)
    api.http.get("/v1/alerts/1001", headers=api.alice)
    api.http.get("/no/such/path")
    text = api.http.get("/metrics").text
    for line in (
        'ahunt_feedback_requests_total{method="POST",route="/v1/feedback",status="201"} 2.0',
        'ahunt_feedback_requests_total{method="DELETE",route="/v1/feedback/{alert_id}",'
        'status="204"} 1.0',
        'ahunt_feedback_requests_total{method="GET",route="/v1/alerts/{alert_id}",'
        'status="200"} 1.0',
        'ahunt_feedback_requests_total{method="GET",route="unmatched",status="404"} 1.0',
        'ahunt_feedback_labels_total{label="sn_ia"} 2.0',
        "ahunt_feedback_store_errors_total 0.0",
        "ahunt_feedback_users 2.0",
        "ahunt_feedback_redis_durable 1.0",
    ):
        assert line in text, line
    assert re.search(r'ahunt_feedback_request_seconds_count\{route="/v1/feedback"\} 2\.0', text)


def series(text: str, metric: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(metric + "{")]


def test_users_input_makes_a_bounded_number_of_series(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    """300 relabels with 300 class names (and requests with invented HTTP methods) give the
    configured series: the taxonomy's, the first few others, and 'other'."""
    token = add_user(redis_client, "alice")
    seed_alert(redis_client, "1001", delivered_to=["alice"])
    app, _ = make_app(redis_server.url, metrics_classes=["sn", "lens"], metrics_other_classes=5)
    with TestClient(app) as http:
        for i in range(300):
            body = {"alert_id": "1001", "label": f"class-{i}"}
            assert http.post("/v1/feedback", json=body, headers=bearer(token)).status_code < 300
        sn = http.post(
            "/v1/feedback", json={"alert_id": "1001", "label": "SN"}, headers=bearer(token)
        )
        assert sn.status_code == 200
        for i in range(20):
            http.request(f"BREW{i}", "/v1/feedback", headers=bearer(token))
        text = http.get("/metrics").text
    labels = series(text, "ahunt_feedback_labels_total")
    assert len(labels) == 7, labels  # sn, class-0..4, other ("lens" and "reserve": none yet)
    assert 'ahunt_feedback_labels_total{label="other"} 295.0' in labels
    assert 'ahunt_feedback_labels_total{label="sn"} 1.0' in labels
    methods = {
        re.search(r'method="([^"]*)"', line)[1]
        for line in series(text, "ahunt_feedback_requests_total")
    }  # type: ignore[index]
    assert methods == {"POST", "other"}


def test_health_and_readiness(api: Api) -> None:
    assert api.http.get("/healthz").json() == {"status": "ok"}
    ready = api.http.get("/readyz").json()
    assert ready["status"] == "ok" and ready["durable"] is True and ready["outbox"] == 0
    schema = api.http.get("/openapi.json").json()
    assert "/v1/feedback/{alert_id}" in schema["paths"]
    assert schema["paths"]["/v1/me"]["get"]["security"] == [{"bearer": []}]
    assert api.http.get("/docs").status_code == 200


def printed_token(out: str) -> str:
    found = re.search(r"token \(shown once, keep it\) (\S+)", out)
    assert found, out
    return found.group(1)


def test_users_command_adds_lists_and_revokes(
    api: Api,
    redis_server: EmbeddedRedis,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    assert ahunt(["users", "add", "carol"]) == 0
    token = printed_token(capsys.readouterr().out)
    assert token.startswith("ahunt_") and len(token) > 40
    hashes: Any = api.redis.hkeys(keys.TOKENS)
    assert token.encode() not in b"".join(hashes)  # only its hash is stored
    assert "carol" in {p.name for p in store.load_profiles(api.redis)}  # routed to at once
    assert api.http.get("/v1/me", headers=bearer(token)).json()["user"] == "carol"
    with pytest.raises(SystemExit):
        ahunt(["users", "add", "carol"])
    capsys.readouterr()
    assert ahunt(["users", "add", "carol", "--rotate"]) == 0
    rotated = printed_token(capsys.readouterr().out)
    assert api.http.get("/v1/me", headers=bearer(token)).status_code == 401
    assert api.http.get("/v1/me", headers=bearer(rotated)).status_code == 200
    assert ahunt(["users", "list"]) == 0
    assert "carol\t1 token" in capsys.readouterr().out
    assert ahunt(["users", "revoke", "carol"]) == 0
    assert api.http.get("/v1/me", headers=bearer(rotated)).status_code == 401
    assert "carol" in {p.name for p in store.load_profiles(api.redis)}
    assert ahunt(["users", "revoke", "carol", "--remove-profile"]) == 0
    assert "carol" not in {p.name for p in store.load_profiles(api.redis)}


@pytest.mark.parametrize(
    "broken", [keys.FEEDBACK_OUTBOX, keys.LABELS_REVISION, keys.train_key("1001"), keys.USERS]
)
def test_a_failed_label_leaves_nothing(api: Api, broken: str) -> None:
    """All or nothing in fact: a key the write needs holds the wrong type (MULTI/EXEC would
    have written the label and bumped the revision before failing on it); the answer is an
    error and Redis is byte for byte as before."""
    assert post(api, api.alice, alert_id="1002", label="sn").status_code == 201
    api.redis.delete(broken)
    api.redis.set(broken, "not-a-counter") if broken == keys.LABELS_REVISION else api.redis.sadd(
        broken, "x"
    )
    before = snapshot(api.redis)
    answer = post(api, api.alice, alert_id="1001", label="lens", interesting=True)
    assert answer.status_code == 500
    assert snapshot(api.redis) == before
    record = LabelRecord(user="bob", alert_id="1001", label="sn")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE|integer"):
        labels.write_label(api.redis, record, np.ones((3, 4, 4), np.float32), {})
    assert snapshot(api.redis) == before


def snapshot(client: redis.Redis) -> dict[bytes, Any]:
    """Every key's content (not DUMP: a hash's encoding may change order on reads alone)."""
    read = {
        b"string": client.get,
        b"hash": client.hgetall,
        b"list": lambda k: client.lrange(k, 0, -1),
        b"set": client.smembers,
        b"zset": lambda k: client.zrange(k, 0, -1, withscores=True),
    }
    return {k: read[client.type(k)](k) for k in sorted(client.keys())}


def test_undo_of_a_missing_label_changes_nothing(redis_client: redis.Redis) -> None:
    """No revision bump and no phantom undo event when there was nothing to undo."""
    record = LabelRecord(user="u", alert_id="9", label="sn", labelled_at=1.0)
    assert labels.write_label(redis_client, record, np.ones((3, 4, 4), np.float32), {}) == 1
    assert labels.delete_label(redis_client, "u", "9")
    assert labels.revision(redis_client) == 2
    assert not labels.delete_label(redis_client, "u", "9")
    assert labels.revision(redis_client) == 2
    assert redis_client.llen(keys.FEEDBACK_OUTBOX) == 0
