"""Redis identities as data: one ACL user per service role, each limited to the keys its code
uses, so no service can write what it does not own; above all, only retrain and operators can
write the model registry (a poisoned model would reach every user).

Key patterns come from ``services.common.keys`` (its functions with ``*``), so they follow a key
renamed there; ``tests/unit/test_redis_roles.py`` fails when a key belongs to no role.

Why the scorer has two users: Redis 6.2 (the embedded server) has no read-only key patterns
(``%R~`` is Redis 7), so a user that may write anything may write every key it can read. The
scorer writes its feedback cache and reads the registry; with one user it could rewrite a model.
So it reads the registry as ``ahunt-scorer-registry`` (read commands only, ``REDIS_REGISTRY_URL``)
and writes as ``ahunt-scorer``, whose keys do not include the registry's. Feedback never reads the
registry. Retrain owns the registry and also reads labels; at the Redis level it could write them
too (same 6.2 limit), which gives it nothing it does not have already: it decides the model.

Pure: no Redis here (``rules`` and ``aclfile`` produce text; ``embedded`` and ``ahunt up`` apply
it, ``ahunt redis-acls`` writes the file deploy/ mounts).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from services.common import keys

# What every data user may run: reads, writes, MULTI/EXEC/WATCH, AUTH/PING/HELLO; never FLUSH*,
# KEYS, CONFIG SET, DEBUG... (@dangerous).
_DATA = ("+@read", "+@write", "+@transaction", "+@connection", "-@dangerous")
_READ_ONLY = ("+@read", "+@connection", "+subscribe", "+unsubscribe", "-@dangerous")


@dataclass(frozen=True)
class RedisRole:
    """One Redis ACL user: the commands (ACL rules) it may run, the key patterns and pub/sub
    channels it may touch."""

    user: str
    commands: tuple[str, ...]
    keys: tuple[str, ...]
    channels: tuple[str, ...] = ()
    why: str = ""

    def rules(self, password_sha256: str) -> list[str]:
        """``ACL SETUSER`` rules (also an aclfile line after ``user <name>``); the password is
        given as its sha256 so no file holds it."""
        return [
            "reset",
            "resetchannels",  # Redis 6.2's reset leaves every channel allowed
            "on",
            f"#{password_sha256}",
            *self.commands,
            *(f"~{k}" for k in self.keys),
            *(f"&{c}" for c in self.channels),
        ]


ADMIN = RedisRole(
    "ahunt-admin",
    ("+@all",),
    ("*",),
    ("*",),
    "operators: `ahunt users`, `ahunt models`, `ahunt bootstrap`",
)
SCORER = RedisRole(
    "ahunt-scorer",
    (*_DATA, "+@scripting"),  # scripts: the dead-letter originals' capped store
    (
        keys.alert_key("*"),
        keys.delivered_key("*"),
        keys.candidates_key("*"),
        keys.USERS,
        keys.budget_key("*"),
        keys.spent_key("*", "*"),
        keys.warmup_key("*"),
        keys.dead_letter_original_key("*"),
        keys.DEAD_LETTER_ORIGINALS,
        keys.DEAD_LETTER_ORIGINALS_BYTES,
    ),
    why="writes the feedback cache, deliveries, budgets, warm-up stamps and dead letters' "
    "originals; reads user profiles",
)
SCORER_REGISTRY = RedisRole(
    "ahunt-scorer-registry",
    _READ_ONLY,
    (keys.MODEL_SURVEYS, keys.model_key("*", "*")),
    (keys.MODELS_ANNOUNCE,),
    "the scorer's reads of the model registry, and its announcements (subscribe only)",
)
FEEDBACK = RedisRole(
    "ahunt-feedback",
    (*_DATA, "+@scripting", "+config|get"),  # scripts: profile CAS, locks; CONFIG GET: /readyz
    (
        keys.USERS,
        keys.TOKENS,
        keys.session_key("*"),
        keys.alert_key("*"),
        keys.delivered_key("*"),
        keys.candidates_key("*"),
        keys.labels_key("*"),
        keys.train_key("*"),
        keys.LABELS_REVISION,
        keys.FEEDBACK_OUTBOX,
        keys.FEEDBACK_OUTBOX_LOCK,
        keys.FEEDBACK_OUTBOX_DEAD,
    ),
    why="labels, training copies, profiles, desk sessions, the outbox; reads tokens, the "
    "feedback cache and deliveries",
)
RETRAIN = RedisRole(
    "ahunt-retrain",
    (*_DATA, "+@scripting", "+publish"),
    (
        keys.MODEL_SURVEYS,
        keys.model_key("*", "*"),
        keys.bootstrap_key("*"),
        keys.learner_key("*", "*"),
        keys.retrain_state_key("*"),
        keys.retrain_lock_key("*"),
        keys.labels_key("*"),
        keys.train_key("*"),
        keys.LABELS_REVISION,
        keys.alert_key("*"),
        keys.USERS,
    ),
    (keys.MODELS_ANNOUNCE,),
    "publishes, promotes and rejects models; reads labels, training copies, interests",
)
ROLES: tuple[RedisRole, ...] = (ADMIN, SCORER, SCORER_REGISTRY, FEEDBACK, RETRAIN)


def password_sha256(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def aclfile(passwords: Mapping[str, str]) -> str:
    """A Redis aclfile: the default user off, one line per role (``passwords`` by user name;
    every role needs one). Load it with ``redis-server --aclfile``."""
    missing = [r.user for r in ROLES if not passwords.get(r.user)]
    if missing:
        raise ValueError(f"no password for Redis user(s) {', '.join(missing)}")
    lines = ["user default off resetkeys resetchannels -@all"]
    for role in ROLES:
        lines.append(
            " ".join(["user", role.user, *role.rules(password_sha256(passwords[role.user]))])
        )
    return "\n".join(lines) + "\n"


def with_credentials(url: str, user: str, password: str) -> str:
    """``url`` with ``user:password@`` in place of any credentials it had.

    >>> with_credentials("redis://127.0.0.1:6379/0", "ahunt-scorer", "p/w")
    'redis://ahunt-scorer:p%2Fw@127.0.0.1:6379/0'
    """
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def redacted(url: str) -> str:
    """``url`` with its password hidden, for banners and logs.

    >>> redacted("redis://ahunt-admin:s3cret@127.0.0.1:6379/0")
    'redis://ahunt-admin:***@127.0.0.1:6379/0'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, host = parts.netloc.rsplit("@", 1)[0].split(":", 1)[0], parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
