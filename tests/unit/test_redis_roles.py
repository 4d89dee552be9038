"""The Redis roles as data: every key of services/common/keys.py belongs to a service role (a key
added or renamed there without a role fails here), the registry's keys are writable by retrain
and operators only, and the aclfile holds no password."""

from __future__ import annotations

import inspect
from fnmatch import fnmatchcase

from services.common import keys, redis_acl

SERVICE_ROLES = [r for r in redis_acl.ROLES if r is not redis_acl.ADMIN]
REGISTRY_KEYS = [
    keys.MODEL_SURVEYS,
    keys.model_key("ztf", "ztf-0001"),
    keys.model_versions_key("ztf"),
    keys.model_live_key("ztf"),
    keys.model_history_key("ztf"),
]


def every_key() -> list[str]:
    """Every key name keys.py can make: its constants, its functions with sample arguments."""
    names = [
        v
        for k, v in vars(keys).items()
        if k.isupper() and not k.startswith("_") and isinstance(v, str)  # "_": name fragments
    ]
    for name, function in inspect.getmembers(keys, inspect.isfunction):
        if function.__module__ == keys.__name__ and name.endswith("_key"):
            arity = len(inspect.signature(function).parameters)
            names.append(function(*(["ztf", "ztf-0001", "x"][:arity])))
    return names


def _covers(role: redis_acl.RedisRole, key: str) -> bool:
    return any(fnmatchcase(key, pattern) for pattern in role.keys)


def test_every_key_belongs_to_a_service_role() -> None:
    names = every_key()
    assert len(names) > 15
    channels = [c for r in SERVICE_ROLES for c in r.channels]  # MODELS_ANNOUNCE is a channel
    orphans = [
        n for n in names if n not in channels and not any(_covers(r, n) for r in SERVICE_ROLES)
    ]
    assert not orphans, f"keys no service role may touch (add them to redis_acl.py): {orphans}"


def test_only_retrain_and_operators_can_write_the_registry() -> None:
    writers = {
        r.user
        for r in redis_acl.ROLES
        if "+@write" in r.commands or "+@all" in r.commands
        if any(_covers(r, k) for k in REGISTRY_KEYS)
    }
    assert writers == {"ahunt-admin", "ahunt-retrain"}
    reader = redis_acl.SCORER_REGISTRY
    assert all(_covers(reader, k) for k in REGISTRY_KEYS)
    assert not any(c.startswith("+") and "write" in c for c in reader.commands)


def test_the_aclfile_holds_hashes_not_passwords() -> None:
    passwords = {r.user: f"secret-of-{r.user}" for r in redis_acl.ROLES}
    text = redis_acl.aclfile(passwords)
    assert not any(p in text for p in passwords.values())
    assert text.splitlines()[0].startswith("user default off")
    assert f"#{redis_acl.password_sha256('secret-of-ahunt-scorer')}" in text
