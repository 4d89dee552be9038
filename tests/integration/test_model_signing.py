"""Signed models end to end, with real exported models, a real Redis and the scorer's watcher:
what the publisher signed is served; forged bytes, a forged manifest, an unsigned version or one
signed with another key is refused, even when promoted behind the registry's back, and the live
version keeps serving; a key rotation keeps serving throughout."""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path

import pytest
import redis
from prometheus_client import CollectorRegistry

from services.cli import main as ahunt
from services.common import keys
from services.common.alerts import Alert
from services.common.registry import Registry
from services.common.signing import ModelKeys, SignatureError
from services.scorer.handler import prepare_stamps
from services.scorer.metrics import ScorerMetrics
from services.scorer.model import ModelSlot
from services.scorer.settings import ScorerSettings
from services.scorer.watcher import ModelWatcher
from tests.integration.test_registry_scorer import V1, V2, export_second_version

KEY = ModelKeys(secrets.token_bytes(32))
OTHER = ModelKeys(secrets.token_bytes(32))


@pytest.fixture(scope="module")
def second(tmp_path_factory: pytest.TempPathFactory, ztf_alerts: list[Alert]) -> Path:
    return export_second_version(tmp_path_factory.mktemp("v2"), ztf_alerts)


def _scorer(
    tmp_path: Path, client: redis.Redis, model_keys: ModelKeys
) -> tuple[ModelWatcher, ModelSlot, ScorerMetrics]:
    settings = ScorerSettings(model_dir=tmp_path / "models", metrics_port=0)
    metrics = ScorerMetrics(CollectorRegistry())
    slot = ModelSlot()
    registry = Registry(client, tmp_path / "scorer-cache", model_keys)
    return ModelWatcher(settings, slot, metrics, registry), slot, metrics


def _promote_by_hand(client: redis.Redis, version: str) -> None:
    """What someone with write access to Redis could do without the registry's checks."""
    client.set(keys.model_live_key("ztf"), version)
    client.rpush(keys.model_history_key("ztf"), version)
    client.publish(keys.MODELS_ANNOUNCE, json.dumps({"survey": "ztf", "version": version}))


def _forge_bytes(client: redis.Redis, version: str, data: bytes) -> None:
    """Other bytes, with the sha256 in the record and the manifest made to match them: only
    the signature can tell."""
    key = keys.model_key("ztf", version)
    manifest = json.loads(client.hget(key, "manifest"))  # type: ignore[arg-type]
    manifest["sha256"] = hashlib.sha256(data).hexdigest()
    client.hset(
        key,
        mapping={
            "onnx": data,
            "sha256": manifest["sha256"],
            "manifest": json.dumps(manifest, sort_keys=True),
        },
    )


def _forge_manifest(client: redis.Redis, version: str) -> None:
    key = keys.model_key("ztf", version)
    manifest = json.loads(client.hget(key, "manifest"))  # type: ignore[arg-type]
    manifest["classes"] = [*manifest["classes"], "injected"]
    client.hset(key, "manifest", json.dumps(manifest, sort_keys=True))


@pytest.mark.parametrize("attack", ["forged bytes", "forged manifest", "unsigned", "wrong key"])
def test_a_model_that_does_not_verify_is_refused_and_the_live_one_keeps_serving(
    attack: str,
    model_root: Path,
    second: Path,
    ztf_alerts: list[Alert],
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    publisher = Registry(redis_client, tmp_path / "publisher", KEY)
    publisher.promote("ztf", publisher.publish(model_root / "ztf" / V1).version)
    watcher, slot, metrics = _scorer(tmp_path, redis_client, KEY)
    watcher.check()
    assert slot.versions() == {"ztf": V1}

    if attack == "wrong key":
        Registry(redis_client, tmp_path / "other", OTHER).publish(second)
    else:
        publisher.publish(second)
        if attack == "forged bytes":
            _forge_bytes(redis_client, V2, (model_root / "ztf" / V1 / "model.onnx").read_bytes())
        elif attack == "forged manifest":
            _forge_manifest(redis_client, V2)
        else:
            redis_client.hdel(keys.model_key("ztf", V2), "signature")
    # The registry itself refuses to promote it...
    with pytest.raises(SignatureError):
        publisher.promote("ztf", V2)
    assert publisher.current("ztf") == V1
    # ...and a promotion behind its back does not reach a session either.
    _promote_by_hand(redis_client, V2)
    watcher.check()
    watcher.check()  # refused once, not retried on every poll
    assert slot.versions() == {"ztf": V1}
    failures = metrics.registry.get_sample_value(
        "ahunt_scorer_model_load_failures_total", {"survey": "ztf"}
    )
    assert failures == 1
    assert not (tmp_path / "scorer-cache" / "ztf" / V2).exists()
    live = slot.get("ztf")
    assert live is not None and len(live.infer(prepare_stamps(ztf_alerts[:4], live)).probs) == 4


def test_a_key_rotation_keeps_serving(
    model_root: Path, second: Path, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """docs/SECURITY.md's procedure: scorers accept old and new, publishers sign with the new,
    `ahunt models sign` re-signs what is kept, then scorers drop the old key."""
    old, new = KEY, OTHER
    Registry(redis_client, tmp_path / "p", old).promote(
        "ztf", Registry(redis_client, tmp_path / "p", old).publish(model_root / "ztf" / V1).version
    )
    # 1. Scorers get the new key and still accept the old one.
    during = ModelKeys(new.signing, (old.signing,))
    watcher, slot, _ = _scorer(tmp_path / "a", redis_client, during)
    watcher.check()
    assert slot.versions() == {"ztf": V1}
    # 2. Publishers sign with the new key; the live version is re-signed with it.
    publisher = Registry(redis_client, tmp_path / "p", during)
    publisher.publish(second)
    assert publisher.sign("ztf", V1) is False  # it was signed (by the old key), not adopted
    # 3. Scorers drop the old key: everything kept verifies with the new one alone.
    watcher, slot, _ = _scorer(tmp_path / "b", redis_client, new)
    watcher.check()
    assert slot.versions() == {"ztf": V1}
    Registry(redis_client, tmp_path / "p", new).promote("ztf", V2)
    watcher.check()
    assert slot.versions() == {"ztf": V2}
    # A version signed by no accepted key is never re-signed (that would launder a forgery).
    _forge_manifest(redis_client, V1)
    with pytest.raises(SignatureError):
        Registry(redis_client, tmp_path / "p", new).sign("ztf", V1)


def test_models_command_signs_and_refuses(
    model_root: Path,
    redis_server: object,
    redis_client: redis.Redis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = redis_server.url  # type: ignore[attr-defined]
    monkeypatch.setenv("AHUNT_MODEL_SIGNING_KEY", KEY.signing.hex())
    assert ahunt(["models", "--redis-url", url, "publish", str(model_root / "ztf" / V1)]) == 0
    assert redis_client.hget(keys.model_key("ztf", V1), "signature")
    # A version published before models were signed: refused until an operator adopts it.
    redis_client.hdel(keys.model_key("ztf", V1), "signature")
    assert ahunt(["models", "--redis-url", url, "promote", V1]) == 1
    assert "unsigned model refused" in capsys.readouterr().err
    assert ahunt(["models", "--redis-url", url, "sign", V1]) == 0
    assert "it was unsigned" in capsys.readouterr().out
    assert ahunt(["models", "--redis-url", url, "promote", V1]) == 0
    # With another key the live version no longer verifies: refused, nothing changed.
    monkeypatch.setenv("AHUNT_MODEL_SIGNING_KEY", OTHER.signing.hex())
    assert ahunt(["models", "--redis-url", url, "promote", V1]) == 1
    assert "does not verify" in capsys.readouterr().err
    assert Registry(redis_client, tmp_path, KEY).current("ztf") == V1
    # A placeholder key is refused where Redis is not on this machine, before connecting.
    monkeypatch.setenv("AHUNT_MODEL_SIGNING_KEY", "change-me-change-me-change-me-change-me")
    assert ahunt(["models", "--redis-url", "redis://redis.example.org:6379/0", "list"]) == 2
    assert "placeholder" in capsys.readouterr().err
