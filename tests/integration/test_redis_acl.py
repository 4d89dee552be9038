"""Redis ACL users on a real Redis (the embedded 6.2, and a Redis 7 when one is on PATH): every
cell of the hand-written matrix in tests/security_matrix.py, run as that user; the registry code
itself under each service's user; the default user off."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from services.common import keys, redis_acl, store
from services.common.embedded import EmbeddedRedis
from services.common.registry import Registry
from tests.infra_fixtures import redis_binaries
from tests.security_matrix import redis_cells

PASSWORDS = {role.user: f"pw-{role.user}" for role in redis_acl.ROLES}

# One command per matrix row (the keys are the real ones, from services.common.keys).
ACTIONS: dict[str, tuple[str, ...]] = {
    "registry.read": ("HGET", keys.model_key("ztf", "ztf-0001"), "manifest"),
    "registry.publish": ("HSET", keys.model_key("ztf", "ztf-0009"), "onnx", "x"),
    "registry.promote": ("SET", keys.model_live_key("ztf"), "ztf-0009"),
    "registry.index": ("ZADD", keys.model_versions_key("ztf"), "9", "ztf-0009"),
    "registry.surveys": ("SADD", keys.MODEL_SURVEYS, "ztf"),
    "registry.announce": ("PUBLISH", keys.MODELS_ANNOUNCE, "{}"),
    "labels.read": ("HGETALL", keys.labels_key("alice")),
    "labels.write": ("HSET", keys.labels_key("alice"), "101", "{}"),
    "training.write": ("HSET", keys.train_key("101"), "meta", "{}"),
    "tokens.read": ("HGETALL", keys.TOKENS),
    "tokens.write": ("HSET", keys.TOKENS, "0" * 64, "mallory"),
    "profiles.read": ("HGETALL", keys.USERS),
    "profiles.write": ("HSET", keys.USERS, "mallory", "{}"),
    "cache.write": ("HSET", keys.alert_key("101"), "meta", "{}"),
    "deliveries.write": ("HSET", keys.delivered_key("alice"), "101", "{}"),
    "sessions.write": ("SET", keys.session_key("ab" * 32), "x"),
    "outbox.write": ("LPUSH", keys.FEEDBACK_OUTBOX, "{}"),
    "bootstrap.write": ("HSET", keys.bootstrap_key("ztf"), "meta", "{}"),
    "learner.write": ("SET", keys.learner_key("ztf", "ztf-0001"), "x"),
    "retrain.lock": ("SET", keys.retrain_lock_key("ztf"), "x", "NX", "PX", "1000"),
    "keys.list": ("KEYS", "*"),
    "config.get": ("CONFIG", "GET", "appendfsync"),
    "config.set": ("CONFIG", "SET", "appendfsync", "always"),
}


@pytest.fixture(scope="module", params=redis_binaries())
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedRedis]:
    directory = tmp_path_factory.mktemp("acl-redis")
    with EmbeddedRedis(
        directory=directory, aclfile=redis_acl.aclfile(PASSWORDS), binary=request.param
    ) as started:
        yield started


def _as(server: EmbeddedRedis, user: str) -> redis.Redis:
    return store.connect(redis_acl.with_credentials(server.url, user, PASSWORDS[user]))


def _allowed(client: redis.Redis, action: str) -> bool:
    try:
        if action == "registry.listen":
            pubsub = client.pubsub()
            try:
                pubsub.subscribe(keys.MODELS_ANNOUNCE)
                message = pubsub.get_message(timeout=2.0)
                return message is not None and message["type"] == "subscribe"
            finally:
                pubsub.close()
        client.execute_command(*ACTIONS[action])
        return True
    except redis.exceptions.NoPermissionError:
        return False


def test_every_cell_of_the_matrix(server: EmbeddedRedis) -> None:
    cells = redis_cells()
    assert {action for _, action, _ in cells} == set(ACTIONS) | {"registry.listen"}
    wrong = []
    for user, action, expected in cells:
        client = _as(server, user)
        try:
            if _allowed(client, action) != expected:
                wrong.append(f"{user} {action}: expected {'allowed' if expected else 'denied'}")
        finally:
            client.close()
    assert not wrong, "\n".join(wrong)


def test_only_retrain_and_operators_can_publish_or_promote(
    server: EmbeddedRedis, model_root: Path, tmp_path: Path
) -> None:
    """The registry code itself, as each user: the scorer (either of its users) and feedback
    cannot publish, promote or roll back, whatever they try; retrain can."""
    admin = _as(server, "ahunt-admin")
    admin.flushall()
    retrain = Registry(_as(server, "ahunt-retrain"), tmp_path / "retrain")
    retrain.promote("ztf", retrain.publish(model_root / "ztf" / "ztf-0001").version)
    for user in ("ahunt-scorer", "ahunt-scorer-registry", "ahunt-feedback"):
        registry = Registry(_as(server, user), tmp_path / user)
        attempts: list[tuple[str, Callable[..., object], tuple[object, ...]]] = [
            ("publish", registry.publish, (model_root / "ztf" / "ztf-0001",)),
            ("promote", registry.promote, ("ztf", "ztf-0001")),
            ("reject", registry.reject, ("ztf", "ztf-0001", "no")),
            ("sign", registry.sign, ("ztf", "ztf-0001")),
        ]
        for what, method, args in attempts:
            with pytest.raises(redis.exceptions.NoPermissionError):
                method(*args)
                pytest.fail(f"{user} could {what}")
    # The scorer's registry user reads and fetches it (what the watcher does).
    reader = Registry(_as(server, "ahunt-scorer-registry"), tmp_path / "scorer")
    assert reader.current("ztf") == "ztf-0001"
    assert (reader.fetch("ztf", "ztf-0001") / "model.onnx").is_file()


def test_the_default_user_is_off(server: EmbeddedRedis) -> None:
    with pytest.raises(redis.exceptions.AuthenticationError):
        store.connect(server.url).ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        store.connect(redis_acl.with_credentials(server.url, "ahunt-scorer", "wrong")).ping()


def test_redis_acls_apply_creates_the_users_on_a_running_redis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the Kubernetes setup job does: connected as the existing admin (here the default
    user), it creates every role's user; with --default-off the open default user goes."""
    from services.cli import main as ahunt

    for role in redis_acl.ROLES:
        variable = role.user.removeprefix("ahunt-").replace("-", "_").upper()
        monkeypatch.setenv(f"AHUNT_SECRET_REDIS_{variable}_PASSWORD", PASSWORDS[role.user])
    with EmbeddedRedis(directory=tmp_path / "redis") as plain:
        monkeypatch.setenv("REDIS_URL", plain.url)
        assert ahunt(["redis-acls", "apply", "--default-off"]) == 0
        out = capsys.readouterr().out
        assert "default user: off" in out and "no aclfile" in out  # said, not hidden
        scorer = _as(plain, "ahunt-scorer")
        scorer.hset(keys.alert_key("1"), "meta", "{}")
        with pytest.raises(redis.exceptions.NoPermissionError):
            scorer.set(keys.model_live_key("ztf"), "ztf-0001")
        with pytest.raises(redis.exceptions.AuthenticationError):
            store.connect(plain.url).ping()
        assert ahunt(["redis-acls", "write", str(tmp_path / "users.acl")]) == 0
        assert "user default off" in (tmp_path / "users.acl").read_text()
