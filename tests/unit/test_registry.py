"""The model registry's state machine on a real (private) Redis, with small stand-in model files
(the registry hashes and moves bytes; it never parses the ONNX graph)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry

from models.manifest import Manifest, utc_now_iso
from models.model_dir import ModelIntegrityError, write_manifest
from services.common import store
from services.common.embedded import EmbeddedRedis
from services.common.keys import MODELS_ANNOUNCE, model_key, model_live_key
from services.common.metrics import RegistryMetrics
from services.common.registry import (
    ModelRecord,
    Registry,
    RegistryError,
    parse_version,
    set_live_version_info,
)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = store.connect(redis_url)
    c.flushall()
    yield c
    c.close()


@pytest.fixture
def registry(client: redis.Redis, tmp_path: Path) -> Registry:
    return Registry(client, tmp_path / "cache")


def fake_model(root: Path, version: str, payload: bytes | None = None, **extra: Any) -> Path:
    """A model directory that verifies: arbitrary bytes as model.onnx plus a valid manifest."""
    data = payload if payload is not None else f"onnx bytes of {version}".encode() * 100
    directory = root / version
    directory.mkdir(parents=True)
    (directory / "model.onnx").write_bytes(data)
    manifest = Manifest(
        version=version,
        parent_version=extra.get("parent"),
        created_at=utc_now_iso(),
        survey=version.rsplit("-", 1)[0],
        classes=["reserve", "normal"],
        input_spec={},
        preprocessing={},
        outputs={"latent": {}, "probs": {}, "novelty": {}},
        training_counts={"normal": 10},
        metrics=extra.get("metrics", {"auc": 0.9}),
        learner_config={},
        detector={},
        sha256=hashlib.sha256(data).hexdigest(),
        parity_max_abs_diff=0.0,
        torch_version="test",
        onnx_opset=18,
    )
    write_manifest(directory, manifest)
    return directory


class BrokenExec(Registry):
    """A promoter that dies after deciding and before EXEC reaches Redis."""

    def _execute(self, pipe: Any) -> list[Any]:
        pipe.reset()  # drops the queued MULTI and the connection's WATCH, sends nothing
        raise ConnectionError("injected: process died before EXEC")


def test_parse_version() -> None:
    assert parse_version("ztf-0012") == ("ztf", 12)
    for bad in ("ztf", "ztf-12", "ZTF-0001", "../x-0001", "ztf-0001/.."):
        with pytest.raises(RegistryError):
            parse_version(bad)


def test_publish_is_a_candidate_and_versions_count_up(registry: Registry, tmp_path: Path) -> None:
    assert registry.next_version("ztf") == "ztf-0001"
    assert registry.current("ztf") is None and registry.surveys() == []
    record = registry.publish(fake_model(tmp_path, "ztf-0001", metrics={"auc": 0.75}))
    assert isinstance(record, ModelRecord)
    assert record.status == "candidate" and record.survey == "ztf" and record.reason is None
    assert record.size == len((tmp_path / "ztf-0001" / "model.onnx").read_bytes())
    assert record.manifest["metrics"] == {"auc": 0.75} and record.promoted_at is None
    assert registry.next_version("ztf") == "ztf-0002"
    registry.publish(fake_model(tmp_path, "ztf-0002", parent="ztf-0001"))
    registry.publish(fake_model(tmp_path, "rubin-0001"))
    assert registry.surveys() == ["rubin", "ztf"]
    assert [r.version for r in registry.list("ztf")] == ["ztf-0001", "ztf-0002"]
    assert [r.version for r in registry.list()] == ["rubin-0001", "ztf-0001", "ztf-0002"]
    assert registry.record("ztf", "ztf-0002").parent == "ztf-0001"  # type: ignore[union-attr]
    assert registry.record("ztf", "ztf-0009") is None
    # A publish crashed before promotion: nothing is live.
    assert registry.current("ztf") is None


def test_versions_are_immutable(registry: Registry, tmp_path: Path) -> None:
    first = registry.publish(fake_model(tmp_path / "a", "ztf-0001"))
    assert registry.publish(tmp_path / "a" / "ztf-0001") == first  # a retried publish
    with pytest.raises(RegistryError, match="immutable"):
        registry.publish(fake_model(tmp_path / "b", "ztf-0001", payload=b"other bytes"))


def test_publish_refuses_a_damaged_directory(registry: Registry, tmp_path: Path) -> None:
    directory = fake_model(tmp_path, "ztf-0001")
    (directory / "model.onnx").write_bytes(b"truncated")
    with pytest.raises(ModelIntegrityError):
        registry.publish(directory)
    assert registry.list() == []


def test_promote_reject_rollback(registry: Registry, client: redis.Redis, tmp_path: Path) -> None:
    for v in ("ztf-0001", "ztf-0002", "ztf-0003"):
        registry.publish(fake_model(tmp_path, v))
    registry.promote("ztf", "ztf-0001")
    registry.promote("ztf", "ztf-0001")  # idempotent
    assert registry.current("ztf") == "ztf-0001"
    registry.promote("ztf", "ztf-0002")
    status = {r.version: r.status for r in registry.list("ztf")}
    assert status == {"ztf-0001": "retired", "ztf-0002": "live", "ztf-0003": "candidate"}
    assert registry.record("ztf", "ztf-0002").promoted_at is not None  # type: ignore[union-attr]

    registry.reject("ztf", "ztf-0003", "gate: auc 0.51 < 0.80")
    with pytest.raises(RegistryError, match="rejected"):
        registry.promote("ztf", "ztf-0003")
    assert registry.current("ztf") == "ztf-0002"
    assert registry.record("ztf", "ztf-0003").reason == "gate: auc 0.51 < 0.80"  # type: ignore[union-attr]
    with pytest.raises(RegistryError, match="live"):
        registry.reject("ztf", "ztf-0002", "no")
    with pytest.raises(RegistryError, match="unknown"):
        registry.promote("ztf", "ztf-0042")

    assert registry.rollback("ztf") == "ztf-0001"
    assert registry.current("ztf") == "ztf-0001"
    rolled = registry.record("ztf", "ztf-0002")
    assert rolled is not None and rolled.status == "retired"
    assert "rolled back" in (rolled.reason or "")
    with pytest.raises(RegistryError, match="no earlier"):
        registry.rollback("ztf")
    assert registry.history("ztf") == ["ztf-0001"]
    # A rolled-back version may go live again; a version rejected after it was live is skipped.
    registry.promote("ztf", "ztf-0002")
    registry.promote("ztf", "ztf-0001")
    registry.reject("ztf", "ztf-0002", "found a bug")
    with pytest.raises(RegistryError, match="no earlier"):
        registry.rollback("ztf")  # history [1, 2, 1]: 2 is rejected, the 1 before it is current
    with pytest.raises(RegistryError, match="no live"):
        registry.rollback("rubin")


def test_failure_before_exec_leaves_the_pointer_unchanged(
    client: redis.Redis, tmp_path: Path
) -> None:
    good = Registry(client, tmp_path / "cache")
    for v in ("ztf-0001", "ztf-0002", "ztf-0003"):
        good.publish(fake_model(tmp_path, v))
    good.promote("ztf", "ztf-0001")
    good.promote("ztf", "ztf-0002")
    before = {k: client.dump(k) for k in sorted(client.keys("ahunt:model:ztf:*"))}
    broken = BrokenExec(client, tmp_path / "cache")
    with pytest.raises(ConnectionError):
        broken.promote("ztf", "ztf-0003")
    with pytest.raises(ConnectionError):
        broken.rollback("ztf")
    with pytest.raises(ConnectionError):
        broken.reject("ztf", "ztf-0003", "x")
    after = {k: client.dump(k) for k in sorted(client.keys("ahunt:model:ztf:*"))}
    assert after == before and good.current("ztf") == "ztf-0002"
    assert {r.version: r.status for r in good.list()} == {
        "ztf-0001": "retired",
        "ztf-0002": "live",
        "ztf-0003": "candidate",
    }


def test_an_unfinished_transaction_changes_nothing(
    registry: Registry, client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """What a promoter that dies mid-transaction leaves: Redis discards MULTI without EXEC."""
    for v in ("ztf-0001", "ztf-0002"):
        registry.publish(fake_model(tmp_path, v))
    registry.promote("ztf", "ztf-0001")
    dying = redis.Redis.from_url(redis_url)
    conn = dying.connection_pool.get_connection()
    conn.send_command("MULTI")
    conn.send_command("SET", model_live_key("ztf"), "ztf-0002")
    conn.send_command("HSET", model_key("ztf", "ztf-0002"), "status", "live")
    conn.disconnect()  # the process is gone before EXEC
    assert registry.current("ztf") == "ztf-0001"
    assert registry.record("ztf", "ztf-0002").status == "candidate"  # type: ignore[union-attr]


def test_concurrent_promotions_keep_pointer_and_statuses_consistent(
    client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    versions = [f"ztf-{i:04d}" for i in range(1, 7)]
    registry = Registry(client, tmp_path / "cache")
    for v in versions:
        registry.publish(fake_model(tmp_path, v))
    errors: list[BaseException] = []

    def churn(offset: int) -> None:
        own = Registry(store.connect(redis_url), tmp_path / "cache")
        try:
            for i in range(30):
                own.promote("ztf", versions[(i + offset) % len(versions)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    live = [r.version for r in registry.list("ztf") if r.status == "live"]
    assert live == [registry.current("ztf")]
    assert registry.history("ztf")[-1] == registry.current("ztf")
    assert len(registry.history("ztf")) <= 90


def test_promotion_is_announced(registry: Registry, client: redis.Redis, tmp_path: Path) -> None:
    registry.publish(fake_model(tmp_path, "ztf-0001"))
    registry.publish(fake_model(tmp_path, "ztf-0002"))
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(MODELS_ANNOUNCE)
    pubsub.get_message(timeout=1.0)
    registry.promote("ztf", "ztf-0001")
    registry.promote("ztf", "ztf-0002")
    registry.rollback("ztf")
    got: list[dict[str, Any]] = []
    while len(got) < 3:
        message = pubsub.get_message(timeout=5.0)
        assert message is not None
        got.append(json.loads(message["data"]))
    pubsub.close()
    assert [(m["action"], m["version"], m["previous"]) for m in got] == [
        ("promote", "ztf-0001", None),
        ("promote", "ztf-0002", "ztf-0001"),
        ("rollback", "ztf-0001", "ztf-0002"),
    ]


def test_fetch_materialises_verifies_and_caches(
    registry: Registry, client: redis.Redis, tmp_path: Path
) -> None:
    source = fake_model(tmp_path / "src", "ztf-0001")
    registry.publish(source)
    path = registry.fetch("ztf", "ztf-0001")
    assert path == tmp_path / "cache" / "ztf" / "ztf-0001"
    assert (path / "model.onnx").read_bytes() == (source / "model.onnx").read_bytes()
    assert (path / "manifest.json").read_text() == (source / "manifest.json").read_text()
    assert sorted(p.name for p in path.parent.iterdir()) == ["ztf-0001"]  # no temp dirs left
    # Cached: a second fetch does not need the bytes in Redis.
    client.hdel(model_key("ztf", "ztf-0001"), "onnx")
    assert registry.fetch("ztf", "ztf-0001") == path
    # A damaged cache copy is replaced... when the registry still has sound bytes.
    (path / "model.onnx").write_bytes(b"bit rot")
    with pytest.raises(RegistryError, match="no model bytes"):
        registry.fetch("ztf", "ztf-0001")
    assert not path.exists()
    with pytest.raises(RegistryError, match="unknown"):
        registry.fetch("ztf", "ztf-0002")


def test_fetch_refuses_corrupted_bytes(
    registry: Registry, client: redis.Redis, tmp_path: Path
) -> None:
    registry.publish(fake_model(tmp_path, "ztf-0001"))
    key = model_key("ztf", "ztf-0001")
    data = client.hget(key, "onnx")
    assert isinstance(data, bytes)
    client.hset(key, "onnx", data[:-1] + bytes([data[-1] ^ 1]))  # one flipped bit
    with pytest.raises(ModelIntegrityError, match="refused"):
        registry.fetch("ztf", "ztf-0001")
    cache = tmp_path / "cache" / "ztf"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_fetch_refuses_a_different_model_under_the_same_name(
    registry: Registry, tmp_path: Path
) -> None:
    registry.publish(fake_model(tmp_path, "ztf-0001"))
    fake_model(tmp_path / "cache" / "ztf", "ztf-0001", payload=b"a local export")
    with pytest.raises(ModelIntegrityError, match="same version name"):
        registry.fetch("ztf", "ztf-0001")


def test_needs_a_bytes_client(redis_url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="decode_responses"):
        Registry(redis.Redis.from_url(redis_url, decode_responses=True), tmp_path)


def test_a_version_belongs_to_its_survey(registry: Registry, tmp_path: Path) -> None:
    registry.publish(fake_model(tmp_path, "ztf-0001"))
    with pytest.raises(RegistryError, match="not a version of survey"):
        registry.promote("rubin", "ztf-0001")
    with pytest.raises(RegistryError, match="not a version of survey"):
        registry.reject("rubin", "ztf-0001", "x")
    assert registry.current("rubin") is None and registry.current("ztf") is None


def test_live_version_gauge(registry: Registry, tmp_path: Path) -> None:
    prometheus = CollectorRegistry()
    gauge = RegistryMetrics(prometheus).live_version

    def series() -> dict[tuple[str, str], float]:
        return {
            (s.labels["survey"], s.labels["version"]): s.value
            for m in prometheus.collect()
            for s in m.samples
            if s.name == "ahunt_registry_live_version_info"
        }

    for v in ("ztf-0001", "ztf-0002", "rubin-0001"):
        registry.publish(fake_model(tmp_path, v))
    set_live_version_info(registry, gauge)
    assert series() == {}
    registry.promote("ztf", "ztf-0001")
    registry.promote("rubin", "rubin-0001")
    set_live_version_info(registry, gauge)
    assert series() == {("ztf", "ztf-0001"): 1.0, ("rubin", "rubin-0001"): 1.0}
    registry.promote("ztf", "ztf-0002")
    set_live_version_info(registry, gauge)
    assert series() == {("ztf", "ztf-0002"): 1.0, ("rubin", "rubin-0001"): 1.0}


def test_prune_keeps_live_rollback_targets_and_recent_versions(
    registry: Registry, client: redis.Redis, tmp_path: Path
) -> None:
    for n in range(1, 11):
        registry.publish(fake_model(tmp_path, f"ztf-{n:04d}"))
    for n in (1, 2, 3, 5):
        registry.promote("ztf", f"ztf-{n:04d}")
    registry.reject("ztf", "ztf-0009", "worse")
    deleted = registry.prune("ztf", keep=2)
    # live 0005; rollback targets 0003, 0002; most recent 0009, 0010
    assert deleted == ["ztf-0001", "ztf-0004", "ztf-0006", "ztf-0007", "ztf-0008"]
    assert registry.versions("ztf") == ["ztf-0002", "ztf-0003", "ztf-0005", "ztf-0009", "ztf-0010"]
    assert not client.exists(model_key("ztf", "ztf-0001"))
    assert registry.history("ztf") == ["ztf-0002", "ztf-0003", "ztf-0005"]
    assert registry.next_version("ztf") == "ztf-0011"  # numbering never reuses a pruned number
    with pytest.raises(RegistryError):
        registry.fetch("ztf", "ztf-0004")
    assert registry.rollback("ztf") == "ztf-0003"  # rollback still works, to a kept version
    # the version rolled back from is neither live, a rollback target nor among the most recent
    assert registry.prune("ztf", keep=2) == ["ztf-0005"]
    assert registry.prune("ztf", keep=2) == []
    with pytest.raises(ValueError):
        registry.prune("ztf", keep=0)
