"""Who is asking: ``Authorization: Bearer <token>`` (or the desk's session cookie, which stands
for a token: ``sessions.py``) -> the token's user, then the rate limit.

Every ``/v1`` route depends on :data:`CurrentUser` and acts on that user only; no route takes a
user name, so another user's labels, interest and alerts cannot even be addressed.

A process remembers a valid token for ``auth_cache_s`` seconds (one Redis round trip less per
request), so revoking a token takes effect within that time (5 s by default; tested in
tests/integration/test_feedback_security.py); unknown tokens are never cached.

Failed authentications are limited per client address, and the limit is checked **before** the
token store is asked: once an address has spent its ``auth_failures_burst`` failures (refilled at
``auth_failures_per_s``), its requests with a token this process does not know get 429 without a
Redis round trip, so a flood of invented tokens costs the store nothing. The address is the TCP
peer (behind a reverse proxy, run uvicorn with ``--forwarded-allow-ips`` so it is the client's).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from redis.asyncio import Redis

from services.feedback import sessions, storage
from services.feedback.ratelimit import TokenBuckets
from services.feedback.tokens import token_hash

SCHEME = "bearer"
CHALLENGE = {"WWW-Authenticate": "Bearer"}


class TokenCache:
    """token hash -> (user, valid until); bounded: cleared when it grows past ``max_entries``."""

    def __init__(self, ttl_s: float, max_entries: int = 100_000) -> None:
        self.ttl_s, self.max_entries = ttl_s, max_entries
        self._entries: dict[str, tuple[str, float]] = {}

    def get(self, key: str) -> str | None:
        hit = self._entries.get(key)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, key: str, user: str) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (user, time.monotonic() + self.ttl_s)


async def get_redis(request: Request) -> Redis:
    # async on purpose: FastAPI runs plain-def dependencies in a thread pool.
    redis: Redis = request.app.state.redis
    return redis


RedisDep = Annotated[Redis, Depends(get_redis)]


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _too_many_failures(wait_s: float) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        "too many failed authentications from this address: wait and check your token",
        {"Retry-After": TokenBuckets.retry_after(wait_s)},
    )


async def current_user(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    state = request.app.state
    failures: TokenBuckets = state.auth_failures
    address = client_address(request)
    if not header and request.cookies.get(sessions.COOKIE):  # the desk (browser) signs in so
        wait = failures.wait(address)
        if wait > 0:  # a session lookup is a store lookup too
            raise _too_many_failures(wait)
        try:
            key = await _session_token_hash(request, request.cookies[sessions.COOKIE])
        except HTTPException as exc:
            if exc.status_code == status.HTTP_401_UNAUTHORIZED:
                failures.take(address)
            raise
    elif scheme.lower() != SCHEME or not token.strip():
        failures.take(address)  # counted, but a missing header never reaches the store anyway
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token", CHALLENGE)
    else:
        key = token_hash(token.strip())
    request.state.token_hash = key
    user = state.token_cache.get(key)
    if user is None:
        wait = failures.wait(address)
        if wait > 0:  # before any store lookup
            raise _too_many_failures(wait)
        user = await storage.user_for_hash(state.batcher, key)
        if user is None:
            failures.take(address)
            failures.forget_idle(state.settings.auth_failures_max_addresses)
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or revoked token", CHALLENGE)
        state.token_cache.put(key, user)
    buckets: TokenBuckets = state.rate_limit
    wait = buckets.take(user)
    if wait > 0:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "rate limit exceeded",
            {"Retry-After": TokenBuckets.retry_after(wait)},
        )
    return user


async def _session_token_hash(request: Request, session_id: str) -> str:
    """The token hash behind a desk session cookie; writes must come from this server's own
    pages (``sessions.origin_allowed``: the CSRF rule)."""
    settings = request.app.state.settings
    if request.method not in sessions.SAFE_METHODS and not sessions.origin_allowed(
        request.headers.get("origin"), request.headers.get("host"), settings.trusted_origins
    ):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "cross-origin write refused: a session cookie only works from this server's desk "
            "(scripts: send Authorization: Bearer <token>)",
        )
    key = await sessions.token_hash_of(request.app.state.redis, session_id)
    if key is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "session expired or signed out: sign in again", CHALLENGE
        )
    return key


CurrentUser = Annotated[str, Depends(current_user)]
