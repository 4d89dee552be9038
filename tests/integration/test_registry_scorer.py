"""The model registry with real exported models, a real Redis and the scorer's model watcher:
distribution without a shared file system, refusal of corrupted bytes, crash safety of
publish/promote, bit-for-bit rollback, and the ``ahunt models`` command."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import redis
from prometheus_client import CollectorRegistry

from models.export import export_onnx
from models.learner import AhuntLearner, LearnerConfig
from models.preprocess import ZTF_SPEC, Preprocessing, assemble, fit_stamp, preprocess
from services.cli import main as ahunt
from services.common.alerts import Alert
from services.common.keys import model_key
from services.common.registry import Registry, RegistryError
from services.scorer.handler import prepare_stamps
from services.scorer.metrics import ScorerMetrics
from services.scorer.model import ModelSlot
from services.scorer.settings import ScorerSettings
from services.scorer.watcher import ModelWatcher

V1, V2 = "ztf-0001", "ztf-0002"


def export_second_version(root: Path, alerts: list[Alert]) -> Path:
    """A second tiny real model (another seed), exported as ztf-0002 with ztf-0001 as parent."""
    import torch

    torch.set_num_threads(1)
    learner = AhuntLearner(
        ZTF_SPEC, ["normal"], LearnerConfig(pretrain_epochs=1, min_epoch_samples=64), seed=1
    )
    prep = Preprocessing()
    raw, valid = assemble([[fit_stamp(s, 63, 63)[0] for s in a.cutouts] for a in alerts], ZTF_SPEC)
    x = preprocess(raw, prep, valid)
    learner.fit(x, ["normal"] * len(x))
    learner.fit_detector(x)
    out = root / "ztf" / V2
    export_onnx(
        learner,
        out,
        version=V2,
        parent_version=V1,
        survey="ztf",
        preprocessing=prep,
        metrics={"auc": 0.5},
    )
    return out


@pytest.fixture(scope="module")
def versions(
    tmp_path_factory: pytest.TempPathFactory, model_root: Path, ztf_alerts: list[Alert]
) -> dict[str, Path]:
    return {
        V1: model_root / "ztf" / V1,
        V2: export_second_version(tmp_path_factory.mktemp("v2"), ztf_alerts),
    }


@pytest.fixture
def metrics() -> ScorerMetrics:
    return ScorerMetrics(CollectorRegistry())  # its own registry: counts start at 0


def _watcher(
    tmp_path: Path, client: redis.Redis, metrics: ScorerMetrics, host: str = "a", **extra: object
) -> tuple[ModelWatcher, ModelSlot]:
    """One scorer replica's model side: its own cache directory (no shared file system)."""
    settings = ScorerSettings(
        model_dir=extra.pop("model_dir", tmp_path / host / "models"),  # type: ignore[arg-type]
        model_cache_dir=tmp_path / host / "cache",
        metrics_port=0,
        **extra,  # type: ignore[arg-type]
    )
    slot = ModelSlot()
    return ModelWatcher(settings, slot, metrics, Registry(client, tmp_path / host / "cache")), slot


def _failures(metrics: ScorerMetrics) -> float:
    value = metrics.registry.get_sample_value(
        "ahunt_scorer_model_load_failures_total", {"survey": "ztf"}
    )
    return value or 0.0


def test_every_replica_follows_promotion_and_rollback(
    versions: dict[str, Path], redis_client: redis.Redis, metrics: ScorerMetrics, tmp_path: Path
) -> None:
    registry = Registry(redis_client, tmp_path / "publisher")
    for v in (V1, V2):
        registry.publish(versions[v])
    replicas = [_watcher(tmp_path, redis_client, metrics, host) for host in ("a", "b")]
    for watcher, slot in replicas:
        watcher.check()
        assert slot.versions() == {}  # published is not live
    registry.promote("ztf", V1)
    for watcher, slot in replicas:
        watcher.check()
        assert slot.versions() == {"ztf": V1}
    registry.promote("ztf", V2)
    for watcher, slot in replicas:
        watcher.check()
        assert slot.versions() == {"ztf": V2}
    assert registry.rollback("ztf") == V1
    for watcher, slot in replicas:
        watcher.check()
        assert slot.versions() == {"ztf": V1}
    # Each replica materialised the versions in its own cache, byte for byte.
    for host in ("a", "b"):
        cached = tmp_path / host / "cache" / "ztf" / V2 / "model.onnx"
        assert cached.read_bytes() == (versions[V2] / "model.onnx").read_bytes()


def test_publish_without_promote_leaves_the_old_version_serving(
    versions: dict[str, Path], redis_client: redis.Redis, metrics: ScorerMetrics, tmp_path: Path
) -> None:
    """A retrainer that dies between publishing and promoting changes nothing for scorers."""
    registry = Registry(redis_client, tmp_path / "publisher")
    registry.publish(versions[V1])
    registry.promote("ztf", V1)
    registry.publish(versions[V2])  # ...and the process is gone before promote()
    watcher, slot = _watcher(tmp_path, redis_client, metrics)
    watcher.check()
    assert registry.current("ztf") == V1 and slot.versions() == {"ztf": V1}
    assert registry.record("ztf", V2).status == "candidate"  # type: ignore[union-attr]


def test_corrupted_bytes_are_refused_and_the_old_model_stays(
    versions: dict[str, Path], redis_client: redis.Redis, metrics: ScorerMetrics, tmp_path: Path
) -> None:
    registry = Registry(redis_client, tmp_path / "publisher")
    for v in (V1, V2):
        registry.publish(versions[v])
    registry.promote("ztf", V1)
    watcher, slot = _watcher(tmp_path, redis_client, metrics)
    watcher.check()
    key = model_key("ztf", V2)
    data = redis_client.hget(key, "onnx")
    assert isinstance(data, bytes)
    mid = len(data) // 2
    redis_client.hset(key, "onnx", data[:mid] + bytes([data[mid] ^ 0x40]) + data[mid + 1 :])
    before = _failures(metrics)
    registry.promote("ztf", V2)
    watcher.check()
    watcher.check()  # refused once, not retried on every poll
    assert slot.versions() == {"ztf": V1}
    assert _failures(metrics) == before + 1
    assert not (tmp_path / "a" / "cache" / "ztf" / V2).exists()
    assert ("ztf", V2) in watcher.refused
    # Rolling back to the sound version is still possible and serves it.
    assert registry.rollback("ztf") == V1
    watcher.check()
    assert slot.versions() == {"ztf": V1}
    # Bytes restored and the version promoted again: a fresh attempt, which now succeeds.
    redis_client.hset(key, "onnx", data)
    registry.promote("ztf", V2)
    watcher.check()
    assert slot.versions() == {"ztf": V2} and _failures(metrics) == before + 1


def test_rejected_version_is_never_served(
    versions: dict[str, Path], redis_client: redis.Redis, metrics: ScorerMetrics, tmp_path: Path
) -> None:
    registry = Registry(redis_client, tmp_path / "publisher")
    for v in (V1, V2):
        registry.publish(versions[v])
    registry.promote("ztf", V1)
    registry.reject("ztf", V2, "gate: worse than live")
    with pytest.raises(RegistryError, match="rejected"):
        registry.promote("ztf", V2)
    watcher, slot = _watcher(tmp_path, redis_client, metrics)
    watcher.check()
    assert slot.versions() == {"ztf": V1}


def test_rollback_restores_outputs_bit_for_bit(
    versions: dict[str, Path],
    redis_client: redis.Redis,
    metrics: ScorerMetrics,
    tmp_path: Path,
    ztf_alerts: list[Alert],
) -> None:
    registry = Registry(redis_client, tmp_path / "publisher")
    for v in (V1, V2):
        registry.publish(versions[v])
    registry.promote("ztf", V1)
    watcher, slot = _watcher(tmp_path, redis_client, metrics)

    def score() -> tuple[str, list[np.ndarray]]:
        watcher.check()
        model = slot.get("ztf")
        assert model is not None
        out = model.infer(prepare_stamps(ztf_alerts, model))
        return model.version, [out.latent, out.probs, out.novelty]

    version_before, before = score()
    registry.promote("ztf", V2)
    version_promoted, promoted = score()
    registry.rollback("ztf")
    version_after, after = score()
    assert (version_before, version_promoted, version_after) == (V1, V2, V1)
    assert not np.array_equal(before[1], promoted[1])  # v2 really is another model
    for a, b in zip(before, after, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_registry_takes_precedence_over_the_local_model_dir(
    versions: dict[str, Path],
    model_root: Path,
    redis_client: redis.Redis,
    metrics: ScorerMetrics,
    tmp_path: Path,
) -> None:
    watcher, slot = _watcher(tmp_path, redis_client, metrics, model_dir=model_root)
    watcher.check()
    assert slot.versions() == {"ztf": V1}  # local CURRENT while the registry has nothing live
    registry = Registry(redis_client, tmp_path / "publisher")
    registry.publish(versions[V2])
    watcher.check()
    assert slot.versions() == {"ztf": V1}
    registry.promote("ztf", V2)
    watcher.check()
    assert slot.versions() == {"ztf": V2}


def test_announcement_wakes_the_watcher_before_its_poll(
    versions: dict[str, Path], redis_client: redis.Redis, metrics: ScorerMetrics, tmp_path: Path
) -> None:
    registry = Registry(redis_client, tmp_path / "publisher")
    for v in (V1, V2):
        registry.publish(versions[v])
    registry.promote("ztf", V1)
    watcher, slot = _watcher(tmp_path, redis_client, metrics, models_refresh_s=300.0)
    watcher.start()
    try:
        time.sleep(1.0)  # let the listener subscribe (a message sent earlier is simply missed)
        registry.promote("ztf", V2)
        deadline = time.monotonic() + 60  # far below the 300 s poll: only the message can do it
        while slot.versions() != {"ztf": V2} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert slot.versions() == {"ztf": V2}
    finally:
        watcher.stop()


def test_models_command(
    versions: dict[str, Path],
    redis_server: object,
    redis_client: redis.Redis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = ["--redis-url", redis_server.url]  # type: ignore[attr-defined]
    assert ahunt(["models", *url, "publish", str(versions[V1]), "--promote"]) == 0
    assert ahunt(["models", *url, "publish", str(versions[V2])]) == 0
    capsys.readouterr()
    assert ahunt(["models", *url, "list", "--survey", "ztf"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["VERSION", "STATUS", "CREATED"]
    assert table[1].startswith("*") and V1 in table[1] and "live" in table[1]
    assert V2 in table[2] and "candidate" in table[2] and V1 in table[2] and "auc=0.5" in table[2]

    assert ahunt(["models", *url, "promote", V2]) == 0
    assert ahunt(["models", *url, "rollback", "--survey", "ztf"]) == 0
    capsys.readouterr()
    assert ahunt(["models", *url, "show", V2]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "retired" and shown["history"] == [V1]
    assert shown["manifest"]["parent_version"] == V1
    assert ahunt(["models", *url, "reject", V2, "--reason", "bad"]) == 0
    assert ahunt(["models", *url, "promote", V2]) == 1
    assert "rejected" in capsys.readouterr().err
    # Backup: a version copied out is a model directory that publishes again as is.
    assert ahunt(["models", *url, "fetch", V2, "--to", str(tmp_path / "backup")]) == 0
    copied = tmp_path / "backup" / "ztf" / V2
    assert (copied / "model.onnx").read_bytes() == (versions[V2] / "model.onnx").read_bytes()
    redis_client.flushall()
    assert ahunt(["models", *url, "publish", str(copied)]) == 0
    capsys.readouterr()
    assert ahunt(["models", *url, "list", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [json.loads(line)["version"] for line in lines] == [V2]
