"""Desk sign-in: an API token exchanged for a session cookie, and the CSRF rule for cookies.

A browser's ``EventSource`` and ``<img>`` cannot send an ``Authorization`` header, so the desk
signs in once with the token (``POST /v1/session`` with ``Authorization: Bearer``) and gets an
``HttpOnly; SameSite=Strict`` cookie holding a random session id. Redis keeps
``sha256(session id) -> sha256(token)`` with the session's lifetime as TTL: the cookie is worth
nothing without the server's record (sign-out deletes it), a copy of Redis holds no usable
secret, and revoking or rotating the user's tokens ends their sessions too (the session resolves
through ``ahunt:tokens`` like a bearer token).

CSRF: a cookie travels with requests the page did not make. ``SameSite=Strict`` already keeps it
off every cross-site request; on top of that a cookie-authenticated request that can change
something (any method but GET/HEAD/OPTIONS) must carry an ``Origin`` header naming this server
(its ``Host``, or one of ``AHUNT_FEEDBACK_TRUSTED_ORIGINS``). Browsers always send ``Origin`` on
such requests; scripts use bearer tokens, which are not ambient and need no check.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from redis.asyncio import Redis

from services.common import keys

COOKIE = "ahunt_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


async def open_session(r: Redis, hashed_token: str, ttl_s: int) -> str:
    """Store a new session for the token with this hash; returns the id for the cookie."""
    session_id = new_session_id()
    await r.set(keys.session_key(session_hash(session_id)), hashed_token, ex=ttl_s)
    return session_id


async def token_hash_of(r: Redis, session_id: str) -> str | None:
    """The hash of the token the session was opened with (``None``: unknown or expired)."""
    raw = await r.get(keys.session_key(session_hash(session_id)))
    return None if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)


async def close_session(r: Redis, session_id: str) -> None:
    await r.delete(keys.session_key(session_hash(session_id)))


def origin_allowed(origin: str | None, host: str | None, trusted: Iterable[str] = ()) -> bool:
    """Whether a cookie-authenticated write with this ``Origin`` header may proceed.

    >>> origin_allowed("http://127.0.0.1:8080", "127.0.0.1:8080")
    True
    >>> origin_allowed("https://evil.example", "127.0.0.1:8080")
    False
    >>> origin_allowed(None, "127.0.0.1:8080")
    False
    >>> origin_allowed("null", "127.0.0.1:8080")
    False
    >>> origin_allowed("https://desk.example.org", "10.0.0.5:8080", ["https://desk.example.org"])
    True
    """
    if not origin or origin == "null":
        return False
    if origin.rstrip("/") in {t.rstrip("/") for t in trusted}:
        return True
    parts = urlsplit(origin)
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc == host
