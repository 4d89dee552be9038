"""Identity: per-user API tokens, stored only as hashes.

A token is ``ahunt_`` + 32 random bytes (URL-safe base64). Redis keeps ``sha256(token) -> user``
in ``ahunt:tokens`` (:data:`services.common.keys.TOKENS`), so a copy of the database does not
give anyone a usable token; the token itself is shown once, when it is created. A user may hold
several tokens (rotation); revoking a user removes all of them.

The admin functions here are synchronous (the ``ahunt users`` command); the API looks tokens up
with its asyncio client in :mod:`services.feedback.auth`.
"""

from __future__ import annotations

import hashlib
import secrets

import redis

from services.common import keys, store
from services.common.topics import user_topic
from services.common.users import UserProfile, check_new_user
from services.common.values import text

TOKEN_PREFIX = "ahunt_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The stored form of a token.

    >>> token_hash("ahunt_x") == hashlib.sha256(b"ahunt_x").hexdigest()
    True
    """
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(client: redis.Redis, name: str, *, rotate: bool = False) -> str:
    """Create ``name`` (a default profile, so the scorer starts routing to them) and return a new
    token. An existing user keeps their profile; ``rotate`` also revokes their older tokens,
    without it adding an existing user is refused, and so is a name that collides with an
    existing one in Kafka (``a.b`` / ``a_b``) or is reserved (docs/SECURITY.md)."""
    user_topic(name)  # validates the name
    exists = client.hexists(keys.USERS, name)
    if exists and not rotate:
        raise ValueError(f"user {name!r} exists: use --rotate for a new token")
    if not exists:
        check_new_user(name, {str(text(u)) for u in client.hkeys(keys.USERS)})
    token = new_token()
    pipe = client.pipeline(transaction=True)
    if exists:
        stale = [h for h, u in client.hgetall(keys.TOKENS).items() if text(u) == name]
        if stale:
            pipe.hdel(keys.TOKENS, *stale)
    else:  # the default profile: the scorer starts routing alerts to this user
        store.save_profile(pipe, UserProfile(name=name))
    pipe.hset(keys.TOKENS, token_hash(token), name)
    pipe.execute()
    return token


def list_users(client: redis.Redis) -> list[tuple[str, int]]:
    """(user, number of live tokens), by name; users without a profile but with tokens too."""
    counts: dict[str, int] = {str(text(u)): 0 for u in client.hkeys(keys.USERS)}
    for value in client.hvals(keys.TOKENS):
        user = str(text(value))
        counts[user] = counts.get(user, 0) + 1
    return sorted(counts.items())


def revoke_user(client: redis.Redis, name: str, *, remove_profile: bool = False) -> int:
    """Delete every token of ``name``; returns how many. ``remove_profile`` also stops routing
    alerts to them (their labels stay: they are training data)."""
    stale = [h for h, u in client.hgetall(keys.TOKENS).items() if text(u) == name]
    pipe = client.pipeline(transaction=True)
    if stale:
        pipe.hdel(keys.TOKENS, *stale)
    if remove_profile:
        pipe.hdel(keys.USERS, name)
    pipe.execute()
    return len(stale)
