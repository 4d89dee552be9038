"""The routes behind the Oracle's desk, against a real Redis and a real broker: sign-in cookie and
its CSRF rule, the live stream (resume, heartbeats, limits, shutdown), stamps, discoveries, and
pages that load nothing from the network."""

from __future__ import annotations

import re
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import redis

from services.common import keys
from services.common.alerts import Alert
from services.common.embedded import EmbeddedRedis
from services.common.kafka import ensure_topics
from services.common.settings import KafkaSettings
from services.common.users import user_topic
from services.feedback.app import create_app
from services.feedback.serve import ThreadedServer
from services.feedback.serve import redis_client as async_redis
from services.feedback.settings import FeedbackSettings
from services.feedback.tokens import add_user, revoke_user
from tests.desk_support import Event, events, publish, serve_desk, user_alert
from tests.integration.test_feedback_support import TestClient, bearer, seed_alert

ORIGIN = {"Origin": "http://testserver"}


def _settings(**overrides: Any) -> FeedbackSettings:
    return FeedbackSettings(**{"rate_limit_per_s": 0.0, "auth_cache_s": 0.0, **overrides})


@pytest.fixture
def desk(redis_server: EmbeddedRedis, redis_client: redis.Redis) -> Iterator[Any]:
    app = create_app(_settings(), async_redis(redis_server.url, _settings()), None)
    with TestClient(app) as http:
        yield http


def _png_size_and_pixels(png: bytes) -> tuple[tuple[int, int], np.ndarray]:
    """Width, height and pixels of an 8-bit greyscale PNG (the format png.encode_png writes)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    idat = png.index(b"IDAT")
    length = struct.unpack(">I", png[idat - 4 : idat])[0]
    raw = zlib.decompress(png[idat + 4 : idat + 4 + length])
    rows = np.frombuffer(raw, np.uint8).reshape(height, width + 1)
    assert (rows[:, 0] == 0).all()  # filter type 0 on every row
    return (width, height), rows[:, 1:]


# -- sign-in -------------------------------------------------------------------------------------


def test_sign_in_gives_a_strict_http_only_cookie_that_stands_for_the_token(
    desk: Any, redis_client: redis.Redis
) -> None:
    token = add_user(redis_client, "alice")
    seed_alert(redis_client, "7", delivered_to=["alice"])
    assert desk.post("/v1/session", headers=bearer("ahunt_wrong")).status_code == 401
    assert desk.post("/v1/session").status_code == 401
    r = desk.post("/v1/session", headers=bearer(token))
    assert r.status_code == 201 and r.json()["user"] == "alice"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    session_id = re.match(r"ahunt_session=([^;]+)", cookie)
    assert session_id and token not in cookie  # a random id, never the token
    # Redis keeps only hashes: neither the session id nor the token is stored in the clear.
    keys = [k.decode() for k in redis_client.keys("ahunt:session:*")]
    assert len(keys) == 1 and session_id.group(1) not in keys[0]
    assert redis_client.get(keys[0]).decode() not in (token, session_id.group(1))
    assert redis_client.ttl(keys[0]) > 3600

    # The cookie alone authenticates reads ...
    assert desk.get("/v1/me").json()["user"] == "alice"
    # ... and writes from this server's own pages; other origins and Origin-less writes: 403.
    assert (
        desk.post("/v1/feedback", json={"alert_id": "7", "label": "sn"}, headers=ORIGIN).status_code
        == 201
    )
    for headers in ({"Origin": "https://evil.example"}, {}, {"Origin": "null"}):
        r = desk.put("/v1/me/interest", json={"weights": {"sn": 0.0}}, headers=headers)
        assert r.status_code == 403, headers
        assert "cross-origin" in r.json()["detail"]
    assert desk.get("/v1/me/interest").json()["weights"] == {}  # the refused writes did nothing
    # A bearer token needs no Origin (scripts), whatever cookie the client also has.
    r = desk.delete("/v1/feedback/7", headers=bearer(token))
    assert r.status_code == 204
    # Another sign-in cannot be made from the cookie alone: the token is required.
    assert desk.post("/v1/session", headers=ORIGIN).status_code == 401

    # Sign-out: the server forgets the session, so even a kept copy of the cookie is dead.
    assert desk.delete("/v1/session", headers=ORIGIN).status_code == 204
    assert redis_client.keys("ahunt:session:*") == []
    stolen = httpx.Cookies({"ahunt_session": session_id.group(1)})
    desk.cookies = stolen
    r = desk.get("/v1/me")
    assert r.status_code == 401 and "sign in again" in r.json()["detail"]


def test_revoking_the_token_ends_its_desk_sessions(desk: Any, redis_client: redis.Redis) -> None:
    token = add_user(redis_client, "bob")
    assert desk.post("/v1/session", headers=bearer(token)).status_code == 201
    assert desk.get("/v1/me").status_code == 200
    revoke_user(redis_client, "bob")
    assert desk.get("/v1/me").status_code == 401


# -- stamps and discoveries ----------------------------------------------------------------------


def test_stamps_are_stretched_pngs_for_your_alerts_only(
    desk: Any, redis_client: redis.Redis, ztf_alerts: list[Alert]
) -> None:
    alice, bob = bearer(add_user(redis_client, "alice")), bearer(add_user(redis_client, "bob"))
    real = ztf_alerts[0]
    seed_alert(redis_client, "11", delivered_to=["alice"], cutouts=real.cutout_bytes)
    seed_alert(redis_client, "12", cutouts=real.cutout_bytes)  # delivered to nobody
    seed_alert(redis_client, "13", delivered_to=["alice"], cutouts=(b"junk", b"x", b"y"))
    science: dict[str, np.ndarray] = {}
    for which in ("science", "template", "difference"):
        for stretch in ("zscale", "asinh"):
            r = desk.get(f"/v1/alerts/11/stamps/{which}.png?stretch={stretch}", headers=alice)
            assert r.status_code == 200 and r.headers["content-type"] == "image/png"
            assert r.headers["x-ahunt-cutouts"] == "original"
            assert "private" in r.headers["cache-control"]
            size, pixels = _png_size_and_pixels(r.content)
            assert size == (63, 63)
            assert pixels.max() == 255 and pixels.std() > 10  # a picture, not a flat field
            if which == "science":
                science[stretch] = pixels
    # Two different stretches of the same stamp; zscale puts the sky mid-grey.
    assert not np.array_equal(science["zscale"], science["asinh"])
    assert 40 < float(np.median(science["zscale"])) < 215
    assert desk.get("/v1/alerts/11/stamps/science.png", headers=bob).status_code == 404
    assert desk.get("/v1/alerts/12/stamps/science.png", headers=alice).status_code == 404
    assert desk.get("/v1/alerts/11/stamps/sky.png", headers=alice).status_code == 422
    assert (
        desk.get("/v1/alerts/11/stamps/science.png?stretch=log", headers=alice).status_code == 422
    )
    bad = desk.get("/v1/alerts/13/stamps/science.png", headers=alice)
    assert bad.status_code == 422 and "does not decode" in bad.json()["detail"]
    # Labelled (not delivered) alerts are yours to see; once the cache expired, the training
    # set's preprocessed copy is shown.
    assert (
        desk.post("/v1/feedback", json={"alert_id": "12", "label": "sn"}, headers=alice).status_code
        == 201
    )
    assert desk.get("/v1/alerts/12/stamps/difference.png", headers=alice).status_code == 200
    redis_client.delete(keys.alert_key("12"))
    r = desk.get("/v1/alerts/12/stamps/difference.png", headers=alice)
    assert r.status_code == 200 and r.headers["x-ahunt-cutouts"] == "preprocessed"


def test_discoveries_curve_and_gallery(desk: Any, redis_client: redis.Redis) -> None:
    alice = bearer(add_user(redis_client, "alice"))
    for i, (label, interesting) in enumerate(
        [("sn", None), ("lens", True), ("artefact", False), ("lens", True)]
    ):
        seed_alert(redis_client, str(100 + i), delivered_to=["alice"])
        body = {"alert_id": str(100 + i), "label": label, "interesting": interesting}
        assert desk.post("/v1/feedback", json=body, headers=alice).status_code == 201
        time.sleep(0.01)  # distinct label times
    out = desk.get("/v1/me/discoveries", headers=alice).json()
    assert (out["labelled"], out["liked"]) == (4, 2)
    assert [(p["labelled"], p["liked"]) for p in out["curve"]] == [(1, 0), (2, 1), (3, 1), (4, 2)]
    assert [g["alert_id"] for g in out["gallery"]] == ["103", "101"]
    assert out["gallery"][0]["object_id"] == "ZTF103" and out["gallery"][0]["label"] == "lens"
    thin = desk.get("/v1/me/discoveries?points=2&gallery=1", headers=alice).json()
    assert [p["labelled"] for p in thin["curve"]] == [1, 4] and len(thin["gallery"]) == 1
    assert (
        desk.get("/v1/me/discoveries", headers=bearer(add_user(redis_client, "bob"))).json()[
            "labelled"
        ]
        == 0
    )


# -- pages ----------------------------------------------------------------------------------------


def test_pages_load_nothing_from_the_network(desk: Any) -> None:
    assert desk.get("/", follow_redirects=False).headers["location"] == "/desk"
    page = desk.get("/desk")
    assert (
        page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    )
    docs = desk.get("/docs")
    assert docs.status_code == 200
    for html in (page.text, docs.text):
        urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
        assert urls, html[:200]
        for url in urls:
            assert not re.match(r"^(https?:)?//", url), url  # same server only
            if not url.startswith(("data:", "#")):
                assert (
                    desk.get(url if url.startswith("/") else f"/desk/{url}").status_code == 200
                ), url
    assert "/openapi.json" in docs.text


# -- the live stream over real HTTP and a real broker ----------------------------------------------


@pytest.fixture
def live(
    redis_server: EmbeddedRedis,
    redis_client: redis.Redis,
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
) -> Iterator[tuple[ThreadedServer, str, str]]:
    """A served API with a Kafka source; yields (server, user, token)."""
    user = f"desk-{uuid.uuid4().hex[:8]}"
    token = add_user(redis_client, user)
    api = serve_desk(
        redis_server.url,
        kafka_settings,
        kafka_bootstrap,
        stream_heartbeat_s=0.3,
        stream_max_per_user=2,
    )
    try:
        yield api, user, token
    finally:
        api.stop()


def _take(
    stream: Iterator[Event], n: int, kinds: tuple[str, ...] = ("alert", "skipped")
) -> list[Event]:
    got = []
    for e in stream:
        if e.event in kinds:
            got.append(e)
        if len(got) == n:
            break
    return got


def test_stream_relays_resumes_exactly_and_skips_poison(
    live: tuple[ThreadedServer, str, str],
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    ztf_alerts: list[Alert],
) -> None:
    api, user, token = live
    ensure_topics(kafka_settings, kafka_bootstrap, [user_topic(user)])
    first = [user_alert(a, user, score=0.9) for a in ztf_alerts[:3]]
    publish(kafka_settings, kafka_bootstrap, user, [first[0], b"not avro", first[1]])
    with httpx.Client(base_url=api.url, timeout=20, headers=bearer(token)) as http:
        with http.stream("GET", "/v1/me/stream?from=earliest") as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            stream = events(r)
            ready = next(stream)
            assert ready.event == "ready" and ready.data["topic"] == user_topic(user)
            got = _take(stream, 2)
        assert [e.event for e in got] == ["alert", "skipped"]
        alert = got[0].data
        assert alert["alert_id"] == ztf_alerts[0].alert_id
        assert alert["object_id"] == ztf_alerts[0].object_id and alert["score"] == pytest.approx(
            0.9
        )
        assert alert["stamps_url"] == f"/v1/alerts/{alert['alert_id']}/stamps/"
        assert "cutout_science" not in alert and alert["published_at"] > 1.7e9
        assert got[1].data["reason"] and got[1].data["offset"] == 1
        # Resume after the first alert: the poison record is reported again, then the rest.
        with http.stream("GET", "/v1/me/stream", headers={"Last-Event-ID": got[0].id}) as r:
            stream = events(r)
            assert next(stream).data["resumed"] is True
            again = _take(stream, 2)
            assert [e.event for e in again] == ["skipped", "alert"]
            assert again[1].data["alert_id"] == ztf_alerts[1].alert_id
            # ... and a new delivery arrives live on the open stream.
            publish(kafka_settings, kafka_bootstrap, user, [first[2]])
            live_one = _take(stream, 1)[0]
            assert live_one.data["alert_id"] == ztf_alerts[2].alert_id
        # Resuming from the last id gives nothing old; from=latest starts at the end.
        with http.stream("GET", f"/v1/me/stream?last_event_id={live_one.id}") as r:
            comments: list[str] = []
            stream = events(r, comments, deadline_s=1.5)
            assert next(stream).event == "ready"
            with pytest.raises(TimeoutError):  # 1.5 s of nothing new ...
                assert next(stream) is None
            assert len(comments) >= 2 and set(comments) == {"heartbeat"}  # ... but heartbeats
        assert http.get("/v1/me/stream", headers={"Last-Event-ID": "0:1,junk"}).status_code == 422
        assert http.get("/v1/me/stream", headers={"Last-Event-ID": "0:1,0:2"}).status_code == 422


def test_stream_from_latest_relays_only_what_is_published_after_it_opened(
    live: tuple[ThreadedServer, str, str],
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    ztf_alerts: list[Alert],
) -> None:
    api, user, token = live
    ensure_topics(kafka_settings, kafka_bootstrap, [user_topic(user)])
    # One record batch of old deliveries (a broker may report its end offset at the batch's
    # first record: the bundled Tansu does).
    publish(kafka_settings, kafka_bootstrap, user, [user_alert(a, user) for a in ztf_alerts[:4]])
    with (
        httpx.Client(base_url=api.url, timeout=20, headers=bearer(token)) as http,
        http.stream("GET", "/v1/me/stream") as r,
    ):
        stream = events(r)
        assert next(stream).event == "ready"
        publish(kafka_settings, kafka_bootstrap, user, [user_alert(ztf_alerts[4], user)])
        (first,) = _take(stream, 1)
    assert first.data["alert_id"] == ztf_alerts[4].alert_id


def test_stream_limits_waiting_topic_cookie_and_clean_shutdown(
    live: tuple[ThreadedServer, str, str],
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    ztf_alerts: list[Alert],
) -> None:
    api, user, token = live
    done = threading.Event()
    with httpx.Client(base_url=api.url, timeout=20) as http:
        assert http.post("/v1/session", headers=bearer(token)).status_code == 201
        # The user's topic does not exist yet: the stream waits for it (the desk's cookie works).
        with http.stream("GET", "/v1/me/stream") as r:
            stream = events(r)
            ready = next(stream)
            assert ready.data["positions"] == {} and ready.id == ""
            with (
                httpx.Client(base_url=api.url, timeout=20, headers=bearer(token)) as other,
                other.stream("GET", "/v1/me/stream") as second,
            ):
                assert second.status_code == 200
                third = other.get("/v1/me/stream")
                assert third.status_code == 429 and "at most 2" in third.json()["detail"]
            publish(kafka_settings, kafka_bootstrap, user, [user_alert(ztf_alerts[5], user)])
            arrived = _take(stream, 1)[0]
            assert arrived.data["alert_id"] == ztf_alerts[5].alert_id and arrived.id

            # Shutdown with the stream open: the server ends it and stops promptly.
            def drain() -> None:
                for _ in stream:
                    pass
                done.set()

            reader = threading.Thread(target=drain, daemon=True)
            reader.start()
            started = time.monotonic()
            api.stop(timeout=15)
            assert not api.thread.is_alive() and time.monotonic() - started < 10
            assert done.wait(5)


def test_stream_without_kafka_is_503(desk: Any, redis_client: redis.Redis) -> None:
    r = desk.get("/v1/me/stream", headers=bearer(add_user(redis_client, "carol")))
    assert r.status_code == 503 and "without Kafka" in r.json()["detail"]
