"""Bootstrap and the retrain loop against a real Redis (embedded) and the real model registry.

Training is tiny (1-2 epochs of a few hundred draws) so each run takes seconds; what is checked
is the wiring: what gets published, promoted or rejected, with which classes and lineage, what
the triggers do, and what the metrics say.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import redis
import torch
from prometheus_client import CollectorRegistry

from bench.retrain import synthetic_stamps
from models.learner import AhuntLearner, LearnerConfig
from models.preprocess import SURVEY_PREPROCESSING, ZTF_SPEC, InputSpec
from services import cli
from services.common import keys, labels
from services.common.alerts import Alert
from services.common.embedded import EmbeddedRedis
from services.common.keys import model_key
from services.common.registry import Registry
from services.common.store import cache_alert, save_profile
from services.common.users import UserProfile
from services.retrain import storage
from services.retrain.app import RetrainLoop, locked_run, retrain_once
from services.retrain.bootstrap import bootstrap, load_alerts, pool_examples, spec_for
from services.retrain.candidate import PhaseTimer, RetrainOutcome, publish_candidate
from services.retrain.dataset import Examples, id_fraction
from services.retrain.metrics import RetrainMetrics
from services.retrain.settings import RetrainSettings
from services.scorer.handler import prepare_stamps
from services.scorer.model import load_model
from tests.samples import sample_files


@pytest.fixture
def settings(tmp_path: Path) -> RetrainSettings:
    return RetrainSettings(
        surveys=["ztf"],
        bootstrap_epochs=2,
        finetune_epochs=2,
        min_epoch_samples=128,
        min_new_labels=12,
        interval_minutes=60,
        device="cpu",
        work_dir=tmp_path / "work",
        registry_cache_dir=tmp_path / "cache",
        metrics_port=0,
    )


@pytest.fixture
def registry(redis_client: redis.Redis, settings: RetrainSettings) -> Registry:
    return Registry(redis_client, settings.registry_cache_dir)


@pytest.fixture
def prom() -> RetrainMetrics:
    return RetrainMetrics(CollectorRegistry())


def _value(metrics: RetrainMetrics, name: str, **labels_: str) -> float:
    value = metrics.registry.get_sample_value(name, labels_)
    return 0.0 if value is None else value


def _bootstrap_ztf(
    settings: RetrainSettings,
    client: redis.Redis,
    registry: Registry,
    alerts: list[Alert],
    metrics: RetrainMetrics | None = None,
) -> RetrainOutcome:
    examples = pool_examples(alerts, ZTF_SPEC, SURVEY_PREPROCESSING)
    return bootstrap(settings, client, registry, "ztf", examples, ZTF_SPEC, metrics=metrics)


_SNAPSHOT: dict[bytes, bytes] = {}


@pytest.fixture
def ztf_v1(
    settings: RetrainSettings,
    redis_client: redis.Redis,
    registry: Registry,
    ztf_alerts: list[Alert],
) -> str:
    """Redis holding a bootstrapped ztf-0001 (trained once per session, then restored from a
    DUMP of every key: the tests after the first skip the bootstrap's seconds)."""
    if not _SNAPSHOT:
        assert _bootstrap_ztf(settings, redis_client, registry, ztf_alerts).promoted
        for key in redis_client.scan_iter(count=1000):
            _SNAPSHOT[key] = redis_client.dump(key)  # type: ignore[assignment]
    else:
        for key, value in _SNAPSHOT.items():
            redis_client.restore(key, 0, value, replace=True)
    assert registry.current("ztf") == "ztf-0001"
    return "ztf-0001"


def _write_labels(
    client: redis.Redis,
    n: int,
    label: str,
    start: int = 0,
    user: str = "alice",
    spec: InputSpec = ZTF_SPEC,
    kind: str = "transient",
) -> None:
    rng = np.random.default_rng(start)
    stamps = synthetic_stamps(rng, [kind] * n, spec)
    for i in range(n):
        record = labels.LabelRecord(user=user, alert_id=f"syn-{start + i}", label=label)
        labels.write_label(client, record, stamps[i], {"survey": "ztf"})


def test_bootstrap_from_real_ztf_packets_serves_in_the_scorer(
    settings: RetrainSettings,
    redis_client: redis.Redis,
    registry: Registry,
    prom: RetrainMetrics,
) -> None:
    alerts = load_alerts(sample_files("ztf", "ztf-fink"), "ztf")
    assert len(alerts) > 100 and spec_for("ztf", alerts) == ZTF_SPEC
    outcome = _bootstrap_ztf(settings, redis_client, registry, alerts, prom)
    assert outcome.outcome == "promoted", outcome.reason
    assert outcome.version == "ztf-0001" and registry.current("ztf") == "ztf-0001"
    assert set(outcome.durations) >= {"dataset", "train", "export", "gate", "publish", "total"}

    model = load_model(registry.fetch("ztf", "ztf-0001"))  # exactly what the scorer loads
    assert model.classes == ["reserve", "normal"]
    assert model.manifest.parent_version is None
    assert model.manifest.preprocessing == SURVEY_PREPROCESSING.to_dict()
    # The pool was preprocessed exactly as the scorer will preprocess these alerts.
    pool = storage.load_pool(redis_client, "ztf")
    assert pool is not None and len(pool.examples) == len(alerts)
    np.testing.assert_array_equal(pool.examples.x, prepare_stamps(alerts, model))
    assert np.isfinite(model.infer(pool.examples.x).novelty).all()
    assert storage.load_learner_state(redis_client, "ztf", "ztf-0001") is not None
    assert _value(prom, "ahunt_retrain_runs_total", survey="ztf", outcome="promoted") == 1

    again = _bootstrap_ztf(settings, redis_client, registry, alerts)
    assert again.outcome == "skipped" and "already has a live model" in again.reason


def test_bootstrap_rubin_takes_the_stamp_size_from_the_alerts(
    settings: RetrainSettings, redis_client: redis.Redis, registry: Registry
) -> None:
    alerts = load_alerts(sample_files("rubin"), "rubin")
    spec = spec_for("rubin", alerts)
    assert spec == InputSpec(3, 30, 30)
    examples = pool_examples(alerts, spec, SURVEY_PREPROCESSING)
    outcome = bootstrap(settings, redis_client, registry, "rubin", examples, spec)
    assert outcome.outcome == "promoted", outcome.reason
    model = load_model(registry.fetch("rubin", "rubin-0001"))
    assert model.spec == spec and model.manifest.survey == "rubin"


def test_label_count_triggers_a_retrain_that_grows_the_head(
    settings: RetrainSettings,
    redis_client: redis.Redis,
    registry: Registry,
    prom: RetrainMetrics,
    ztf_v1: str,
) -> None:
    save_profile(redis_client, UserProfile(name="alice", weights={"lens": 1.0}))
    # A new class needs a few dozen optimiser steps to separate from the pool (with 8 steps
    # every alert comes out "lens" and the gate rightly refuses it).
    settings = settings.model_copy(update={"min_epoch_samples": 512})
    loop = RetrainLoop(settings, redis_client, registry, prom)

    _write_labels(redis_client, settings.min_new_labels - 1, "lens")
    assert loop.step() == []  # one label short, and the interval is an hour away
    assert registry.versions("ztf") == ["ztf-0001"]

    _write_labels(redis_client, 1, "lens", start=settings.min_new_labels - 1)
    # Recent alerts in the scorer's cache join the detector's reference pool (not training).
    recent = synthetic_stamps(np.random.default_rng(9), ["normal"] * 20, ZTF_SPEC)
    pipe = redis_client.pipeline()
    for i, stamp in enumerate(recent):
        cache_alert(pipe, f"recent-{i}", {"survey": "ztf"}, stamp, [b"", b"", b""], 600)
    cache_alert(pipe, "other", {"survey": "rubin"}, recent[0], [b"", b"", b""], 600)
    pipe.execute()
    [outcome] = loop.step()
    assert outcome.outcome == "promoted", outcome.reason
    assert outcome.version == "ztf-0002" and registry.current("ztf") == "ztf-0002"
    assert outcome.labels_used == settings.min_new_labels
    record = registry.record("ztf", "ztf-0002")
    assert record is not None
    assert record.manifest["classes"] == ["reserve", "normal", "lens"]
    assert record.manifest["parent_version"] == "ztf-0001"
    # The stable split held some of the 12 out (those whose id hashes below the fraction).
    trained = sum(id_fraction(f"syn-{i}") >= settings.holdout_fraction for i in range(12))
    assert 0 < trained < 12
    assert record.manifest["training_counts"]["lens"] == trained
    trained_total = sum(record.manifest["training_counts"].values())
    assert record.manifest["detector"]["bank_size"] == trained_total + 20
    assert record.manifest["metrics"]["label_revision"] == settings.min_new_labels
    assert len(outcome.losses) == settings.finetune_epochs
    assert _value(prom, "ahunt_retrain_labels", survey="ztf") == settings.min_new_labels
    assert _value(prom, "ahunt_retrain_last_success_timestamp_seconds", survey="ztf") > 0
    assert _value(prom, "ahunt_retrain_duration_seconds_count", survey="ztf", phase="train") == 1

    # Nothing new since: not due. An hour later: due, but with no new label it is only counted.
    assert loop.step() == []
    [later] = loop.step(now=storage.load_attempt(redis_client, "ztf").attempted_at + 3601)
    assert later.outcome == "skipped" and later.reason == "no new labels"
    assert registry.versions("ztf") == ["ztf-0001", "ztf-0002"]
    assert _value(prom, "ahunt_retrain_runs_total", survey="ztf", outcome="skipped") == 1


def test_a_worse_candidate_is_published_as_rejected_and_the_live_one_stays(
    settings: RetrainSettings,
    redis_client: redis.Redis,
    registry: Registry,
    prom: RetrainMetrics,
    ztf_v1: str,
) -> None:
    # A fine-tune far too short for a new class: after 4 optimiser steps on fresh Adam moments
    # the new row's weights have grown along the (non-negative) latents, so every alert, the
    # pool's normal ones included, comes out "lens". The gate must catch the collapse.
    _write_labels(redis_client, 12, "lens")
    short = settings.model_copy(update={"finetune_epochs": 1, "min_epoch_samples": 128})
    outcome = retrain_once(short, redis_client, registry, "ztf", prom)
    assert outcome.outcome == "rejected", outcome.reason
    assert outcome.reason.startswith("pool:normal") and "called 'lens'" in outcome.reason
    assert registry.current("ztf") == "ztf-0001"
    [rejected] = [r for r in registry.list("ztf") if r.version == "ztf-0002"]
    assert rejected.status == "rejected" and (rejected.reason or "").startswith("pool:normal")
    assert rejected.manifest["parent_version"] == "ztf-0001"
    assert _value(prom, "ahunt_retrain_gate_rejections_total", survey="ztf", reason="pool") == 1
    assert _value(prom, "ahunt_retrain_runs_total", survey="ztf", outcome="rejected") == 1
    assert _value(prom, "ahunt_retrain_last_success_timestamp_seconds", survey="ztf") > 0
    # A rejection is a completed run: the trigger state moved on, so it is not retried at once.
    assert storage.load_attempt(redis_client, "ztf").revision == labels.revision(redis_client)
    assert RetrainLoop(short, redis_client, registry, prom).step() == []


def test_retrain_without_a_model_is_skipped_and_a_held_lock_is_respected(
    settings: RetrainSettings, redis_client: redis.Redis, registry: Registry, prom: RetrainMetrics
) -> None:
    first = retrain_once(settings, redis_client, registry, "ztf", prom)
    assert first.outcome == "skipped" and "bootstrap" in first.reason
    lock = redis_client.lock(keys.retrain_lock_key("ztf"), timeout=30)
    assert lock.acquire(blocking=False)
    try:
        held = retrain_once(settings, redis_client, registry, "ztf", prom)
    finally:
        lock.release()
    assert held.outcome == "skipped" and "running" in held.reason


def test_a_failed_run_is_counted_and_backs_off(
    settings: RetrainSettings,
    redis_client: redis.Redis,
    registry: Registry,
    prom: RetrainMetrics,
    ztf_v1: str,
) -> None:
    # Corrupt the live version's bytes in the registry: fetching it must fail loudly, and the
    # run with it, before anything is trained or published.
    redis_client.hset(model_key("ztf", ztf_v1), "onnx", b"not a model")
    _write_labels(redis_client, settings.min_new_labels, "lens")
    loop = RetrainLoop(settings, redis_client, registry, prom)
    [outcome] = loop.step()
    assert outcome.outcome == "failed" and "ModelIntegrityError" in outcome.reason
    assert registry.versions("ztf") == ["ztf-0001"]
    assert _value(prom, "ahunt_retrain_consecutive_failures", survey="ztf") == 1
    assert _value(prom, "ahunt_retrain_runs_total", survey="ztf", outcome="failed") == 1
    assert loop.step() == []  # backing off
    assert loop.retry_at["ztf"] > 0


def test_the_commands_bootstrap_from_a_labels_csv_and_retrain_now(
    redis_server: EmbeddedRedis,
    redis_client: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in {
        "WORK_DIR": tmp_path / "work",
        "REGISTRY_CACHE_DIR": tmp_path / "cache",
        "BOOTSTRAP_EPOCHS": 1,
        "MIN_EPOCH_SAMPLES": 64,
        "DEVICE": "cpu",
        "METRICS_PORT": 0,
    }.items():
        monkeypatch.setenv(f"AHUNT_RETRAIN_{name}", str(value))
    [source] = sample_files("rubin")
    alerts = load_alerts([source], "rubin")
    csv = tmp_path / "truth.csv"
    csv.write_text("alert_id,class\n" + "".join(f"{a.alert_id},Lens\n" for a in alerts[:2]))
    url = ["--redis-url", redis_server.url, "--json"]

    assert (
        cli.main(
            [
                "bootstrap",
                "--survey",
                "rubin",
                "--from",
                str(source.parent),
                "--labels",
                str(csv),
                *url,
            ]
        )
        == 0
    )
    boot = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert boot["outcome"] == "promoted" and boot["version"] == "rubin-0001"
    registry = Registry(redis_client, tmp_path / "cache")
    record = registry.record("rubin", "rubin-0001")
    assert record is not None and record.manifest["classes"] == ["reserve", "normal", "lens"]
    assert record.manifest["training_counts"] == {"normal": len(alerts) - 2, "lens": 2}

    assert cli.main(["retrain", "--now", "--survey", "rubin", *url]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["outcome"] in ("promoted", "rejected") and again["version"] == "rubin-0002"
    assert again["parent_version"] == "rubin-0001" and len(again["losses"]) == 2
    assert set(again["durations"]) >= {"dataset", "train", "export", "gate", "publish", "total"}


def _tiny_learner(seed: int = 0) -> tuple[AhuntLearner, np.ndarray]:
    spec = InputSpec(3, 16, 16)
    names = ["normal", "transient"] * 20
    x = synthetic_stamps(np.random.default_rng(seed), names, spec)
    learner = AhuntLearner(spec, ["normal", "transient"], LearnerConfig(min_epoch_samples=64))
    learner.fit(x, names, 1)
    learner.fit_detector(x)
    return learner, x


@pytest.mark.parametrize("broken", ["nan_weights", "parity"])
def test_a_candidate_that_cannot_be_exported_is_rejected_unpublished(
    broken: str,
    settings: RetrainSettings,
    redis_client: redis.Redis,
    registry: Registry,
    prom: RetrainMetrics,
) -> None:
    learner, x = _tiny_learner()
    if broken == "nan_weights":
        with torch.no_grad():
            learner.net.head.linear.weight[0, 0] = float("nan")
    else:  # a tolerance no export can meet: the parity check itself must refuse
        settings = settings.model_copy(update={"parity_tolerance": 1e-15})
    holdout = Examples(tuple(f"h{i}" for i in range(8)), x[:8], ("normal",) * 8)

    def run(timer: PhaseTimer) -> RetrainOutcome:
        published = publish_candidate(
            redis_client,
            registry,
            learner,
            survey="ztf",
            parent=None,
            compare_with=None,
            preprocessing=SURVEY_PREPROCESSING,
            holdout=holdout,
            probe=x,
            interests={},
            settings=settings,
            timer=timer,
        )
        return RetrainOutcome("ztf", published.outcome, published.reason, published.version)

    outcome = locked_run(settings, redis_client, "ztf", run, prom)
    kind = "non_finite" if broken == "nan_weights" else "parity"
    assert outcome.outcome == "rejected" and outcome.reason.startswith(f"{kind}:")
    assert outcome.version is None and registry.versions("ztf") == []
    assert _value(prom, "ahunt_retrain_gate_rejections_total", survey="ztf", reason=kind) == 1
    assert not list((settings.work_dir).iterdir())  # nothing half-exported left behind


def test_old_versions_and_their_learner_states_are_pruned_after_a_run(
    settings: RetrainSettings,
    redis_client: redis.Redis,
    registry: Registry,
    ztf_v1: str,
) -> None:
    keep_one = settings.model_copy(
        update={"keep_versions": 1, "finetune_epochs": 1, "min_epoch_samples": 128}
    )
    for run in range(3):  # each run publishes a version (promoted or rejected)
        _write_labels(redis_client, 6, "lens", start=100 * run)
        outcome = retrain_once(keep_one, redis_client, registry, "ztf")
        assert outcome.version is not None, outcome.reason
    live = registry.current("ztf")
    kept = set(registry.versions("ztf"))
    # live + one rollback target + the most recent: never more than 3, the live one always
    assert live in kept and len(kept) <= 3 and "ztf-0004" in kept
    for n in range(1, 5):
        version = f"ztf-{n:04d}"
        state = redis_client.exists(keys.learner_key("ztf", version))
        assert bool(state) == (version in kept), version
