"""The REST API's controls (docs/SECURITY.md): who may call which route (a table over three users
and every route), the failed-authentication limit per client address (checked before the token
store is asked), how long a revoked token keeps working, and a readiness answer that does not
carry backend errors."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from fastapi.routing import APIRoute
from starlette.routing import Route

from services.common import labels
from services.common.embedded import EmbeddedRedis, free_port
from services.feedback import sessions
from services.feedback.app import ROUTERS
from services.feedback.settings import FeedbackSettings
from services.feedback.tokens import add_user, revoke_user
from tests.integration.test_feedback_support import TestClient, bearer, make_app, seed_alert

# Expected status per caller: alice received alert 1001 and labelled it; bob and carol did not.
# Columns: no token, an invented token, carol, bob, alice; rows run in order (alice undoes her
# label, bob and carol cannot, then everyone labels 1001 for themselves). A 404 for another
# user's alert is the answer for an alert that does not exist: nobody learns what was delivered
# to someone else. The page (/desk) is public; what it shows needs a sign-in. This app has no
# Kafka, so the stream answers 503 once the caller is known (its isolation: tests/browser and
# tests/integration/test_desk_api.py). Alice's seeded alert has no stamp bytes, hence her 404.
# Session cookies are cleared before every request: each caller here is exactly its header.
# The last three columns are alice through the desk's session cookie (a fresh sign-in for each
# request, no Authorization header): with an Origin naming this server ("cookie"), with none
# ("no-origin") and with a foreign one ("foreign"). The CSRF rule: a write with the cookie needs
# this server's Origin (403 otherwise, before the session is even looked up); reads do not
# (SameSite=Strict keeps the cookie off cross-site requests in browsers). They run after alice,
# so her label is already undone (404) and labelled again (200); signing in needs the token.
CALLERS = ("anonymous", "invented", "carol", "bob", "alice", "cookie", "no-origin", "foreign")
COOKIE_ORIGINS = {
    "cookie": "http://testserver",
    "no-origin": None,
    "foreign": "https://evil.example",
}
REST_MATRIX = """
method path                          anonymous invented carol bob alice cookie no-origin foreign
GET    /healthz                      200       200      200   200 200   200    200       200
GET    /readyz                       200       200      200   200 200   200    200       200
GET    /metrics                      200       200      200   200 200   200    200       200
GET    /openapi.json                 200       200      200   200 200   200    200       200
GET    /docs                         200       200      200   200 200   200    200       200
GET    /docs/oauth2-redirect         200       200      200   200 200   200    200       200
GET    /v1/me                        401       401      200   200 200   200    200       200
GET    /v1/me/interest               401       401      200   200 200   200    200       200
PUT    /v1/me/interest               401       401      200   200 200   200    403       403
GET    /v1/me/questions              401       401      200   200 200   200    200       200
GET    /v1/classes                   401       401      200   200 200   200    200       200
GET    /v1/feedback                  401       401      200   200 200   200    200       200
GET    /v1/alerts/1001               401       401      404   404 200   200    200       200
GET    /v1/alerts/1001/cutouts.png   401       401      404   404 200   200    200       200
DELETE /v1/feedback/1001             401       401      404   404 204   404    403       403
POST   /v1/feedback                  401       401      201   201 201   200    403       403
GET    /                             307       307      307   307 307   307    307       307
GET    /desk                         200       200      200   200 200   200    200       200
GET    /v1/me/discoveries            401       401      200   200 200   200    200       200
GET    /v1/me/stream                 401       401      503   503 503   503    503       503
GET    /v1/alerts/1001/stamps/science.png 401  401      404   404 404   404    404       404
POST   /v1/session                   401       401      201   201 201   401    403       403
DELETE /v1/session                   401       401      204   204 204   204    403       403
"""
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "/v1/me/interest"): {"weights": {"lens": 1.0}},
    ("POST", "/v1/feedback"): {"alert_id": "1001", "label": "lens"},
}


def rest_rows() -> list[tuple[str, str, dict[str, int]]]:
    lines = [line.split() for line in REST_MATRIX.strip().splitlines()]
    assert tuple(lines[0][2:]) == CALLERS
    return [(m, p, dict(zip(CALLERS, map(int, codes), strict=True))) for m, p, *codes in lines[1:]]


@dataclass
class Users:
    http: Any
    redis: redis.Redis
    headers: dict[str, dict[str, str]]
    app: Any


@pytest.fixture
def users(redis_server: EmbeddedRedis, redis_client: redis.Redis) -> Iterator[Users]:
    headers = {name: bearer(add_user(redis_client, name)) for name in ("alice", "bob", "carol")}
    headers["anonymous"] = {}
    headers["invented"] = bearer("ahunt_" + "x" * 43)
    seed_alert(redis_client, "1001", delivered_to=["alice"])
    app, _ = make_app(redis_server.url)
    with TestClient(app) as http:
        r = http.post("/v1/feedback", json=BODIES["POST", "/v1/feedback"], headers=headers["alice"])
        assert r.status_code == 201
        yield Users(http, redis_client, headers, app)


def test_authorization_matrix_over_three_users_and_every_route(users: Users) -> None:
    rows = rest_rows()
    routes = {
        (method, route.path)
        for route in (*users.app.routes, *(r for router in ROUTERS for r in router.routes))
        if isinstance(route, APIRoute | Route)
        for method in set(route.methods or ()) - {"HEAD"}
    }
    covered = {
        (m, p.replace("1001", "{alert_id}").replace("science.png", "{which}.png"))
        for m, p, _ in rows
    }
    assert covered == routes, f"routes missing from the table: {routes - covered}"
    wrong = []
    for method, path, expected in rows:
        for caller in CALLERS:
            body = BODIES.get((method, path))
            users.http.cookies.clear()  # a sign-in row must not authenticate the next caller
            headers = users.headers.get(caller, {})
            if caller in COOKIE_ORIGINS:
                headers = _signed_in(users, COOKIE_ORIGINS[caller])
            r = users.http.request(method, path, headers=headers, json=body, follow_redirects=False)
            if r.status_code != expected[caller]:
                wrong.append((method, path, caller, expected[caller], r.status_code, r.text[:80]))
    assert not wrong, wrong
    mine = {u: labels.get_label(users.redis, u, "1001") for u in ("alice", "bob", "carol")}
    assert all(record is not None and record.user == u for u, record in mine.items())


def _signed_in(users: Users, origin: str | None) -> dict[str, str]:
    """Alice signs in (bearer token -> cookie, kept by the client); the headers of a request
    made with that cookie only."""
    assert users.http.post("/v1/session", headers=users.headers["alice"]).status_code == 201
    assert users.http.cookies.get(sessions.COOKIE)
    return {"origin": origin} if origin else {}


def test_failed_authentications_are_limited_per_address_before_the_store(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    good = bearer(add_user(redis_client, "alice"))
    app, _ = make_app(
        redis_server.url, auth_failures_burst=5, auth_failures_per_s=0.01, auth_cache_s=60.0
    )
    with TestClient(from_peer_header(app)) as http:
        attacker = Peer(http, "203.0.113.7")
        neighbour = Peer(http, "198.51.100.2")
        assert attacker.get("/v1/me", headers=good).status_code == 200  # now in the token cache
        invented = [bearer(f"ahunt_guess{i:04d}") for i in range(60)]
        codes = [attacker.get("/v1/me", headers=h).status_code for h in invented[:5]]
        assert codes == [401] * 5
        before = int(redis_client.info("stats")["total_commands_processed"])
        flood = [attacker.get("/v1/me", headers=h) for h in invented[5:]]
        after = int(redis_client.info("stats")["total_commands_processed"])
        assert {r.status_code for r in flood} == {429}
        assert int(flood[0].headers["retry-after"]) >= 1
        assert after - before <= 1, "blocked attempts must not reach Redis"  # the INFO itself
        # A token this process already knows still works; other addresses are not affected.
        assert attacker.get("/v1/me", headers=good).status_code == 200
        assert neighbour.get("/v1/me", headers=invented[0]).status_code == 401
        assert neighbour.get("/v1/me", headers=good).status_code == 200
        # Invented session cookies are failed authentications too, limited the same way.
        cookies = [{"cookie": f"{sessions.COOKIE}=guess{i:04d}"} for i in range(40)]
        prober = Peer(http, "192.0.2.9")
        assert [prober.get("/v1/me", headers=c).status_code for c in cookies[:5]] == [401] * 5
        before = int(redis_client.info("stats")["total_commands_processed"])
        flood = [prober.get("/v1/me", headers=c) for c in cookies[5:]]
        after = int(redis_client.info("stats")["total_commands_processed"])
        assert {r.status_code for r in flood} == {429}
        assert after - before <= 1, "blocked cookie attempts must not reach Redis"


def from_peer_header(app: Any) -> Any:
    """The app, seeing the ``x-test-peer`` header as the TCP peer's address (one test client,
    one event loop, several client addresses)."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        peer = dict(scope.get("headers", [])).get(b"x-test-peer")
        if scope["type"] == "http" and peer:
            scope = {**scope, "client": (peer.decode(), 40000)}
        await app(scope, receive, send)

    return wrapped


@dataclass
class Peer:
    http: Any
    address: str

    def get(self, path: str, headers: dict[str, str]) -> Any:
        return self.http.get(path, headers={**headers, "x-test-peer": self.address})


def test_a_revoked_token_stops_working_within_the_cache_time(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    assert FeedbackSettings.model_fields["auth_cache_s"].default == 5.0  # the documented bound
    token = bearer(add_user(redis_client, "alice"))
    bound_s = 1.0
    app, _ = make_app(redis_server.url, auth_cache_s=bound_s)
    with TestClient(app) as http:
        assert http.get("/v1/me", headers=token).status_code == 200
        revoked_at = time.monotonic()
        assert revoke_user(redis_client, "alice") == 1
        while http.get("/v1/me", headers=token).status_code == 200:
            assert time.monotonic() - revoked_at <= bound_s + 0.5, "still accepted past the bound"
            time.sleep(0.05)
        assert http.get("/v1/me", headers=token).status_code == 401
    uncached, _ = make_app(redis_server.url, auth_cache_s=0.0)
    fresh = bearer(add_user(redis_client, "bob"))
    with TestClient(uncached) as http:
        assert http.get("/v1/me", headers=fresh).status_code == 200
        revoke_user(redis_client, "bob")
        assert http.get("/v1/me", headers=fresh).status_code == 401  # at once


def test_readiness_carries_no_backend_error_text() -> None:
    port = free_port()
    app, _ = make_app(f"redis://svc-feedback:hunter2@127.0.0.1:{port}/0", redis_timeout_s=0.5)
    with TestClient(app) as http:
        r = http.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["redis"] == "unavailable" and body["status"] == "unavailable"
    assert str(port) not in r.text and "127.0.0.1" not in r.text and "hunter2" not in r.text
    assert "Error" not in r.text


def test_users_add_creates_the_topic_and_refuses_colliding_names(
    redis_server: EmbeddedRedis,
    redis_client: redis.Redis,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from confluent_kafka.admin import AdminClient

    from services.cli import main as ahunt
    from services.common.kafka_acl import acl_support

    name = f"sec.{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    assert ahunt(["users", "add", name]) == 0
    out = capsys.readouterr().out
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topics = admin.list_topics(timeout=10).topics
    assert f"ahunt.user.{name}" in topics  # before any scorer ran
    if acl_support(admin):  # Apache Kafka with an authorizer: a SCRAM credential, shown once
        assert "Kafka: password (shown once, keep it)" in out
    else:  # the bundled broker stores no ACLs: no credential is pretended (docs/SECURITY.md)
        assert "no Kafka credential issued" in out and "password" not in out
    with pytest.raises(SystemExit, match="collide"):
        ahunt(["users", "add", name.replace(".", "_")])
    with pytest.raises(SystemExit, match="reserved"):
        ahunt(["users", "add", "ahunt-scorer"])
    assert ahunt(["users", "revoke", name]) == 0
    assert "Kafka" in capsys.readouterr().out
    admin.delete_topics([f"ahunt.user.{name}"])[f"ahunt.user.{name}"].result(timeout=10)
