"""The promotion gate (services.retrain.gate) on real exported models and onnxruntime sessions.

A learnable synthetic set (four stamp classes, bench.retrain.synthetic_stamps) gives a live model
trained on the true labels; candidates are an equal model, one trained on shuffled labels, and
deliberately broken graphs (NaN weights, a probs width that disagrees with the manifest).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from bench.retrain import SYNTHETIC_CLASSES, synthetic_stamps
from models.export import export_onnx
from models.interest import Interest
from models.learner import AhuntLearner, LearnerConfig
from models.model_dir import read_manifest, sha256_file, write_manifest
from models.preprocess import SURVEY_PREPROCESSING, InputSpec
from models.session import Outputs, load_session
from services.retrain.gate import (
    Check,
    GateResult,
    ModelUnderTest,
    auroc,
    evaluate_gate,
    pool_checks,
    recall_per_class,
)
from services.retrain.settings import GateConfig, RetrainSettings

SPEC = InputSpec(3, 16, 16)
CONFIG = LearnerConfig(min_epoch_samples=256)
GATE = GateConfig()
INTERESTS = {
    "alice": Interest({"transient": 1.0}),
    "bob": Interest({"artefact": 1.0, "variable": 0.5}),
    "carol": Interest(),  # no interest yet: her AUROC cannot be measured
}


@dataclasses.dataclass(frozen=True)
class Data:
    x_train: np.ndarray
    y_train: list[str]
    x_hold: np.ndarray
    y_hold: list[str]


@pytest.fixture(scope="module")
def data() -> Data:
    rng = np.random.default_rng(7)
    labels = [str(c) for c in rng.choice(SYNTHETIC_CLASSES, 700)]
    x = synthetic_stamps(rng, labels, SPEC)
    return Data(x[:400], labels[:400], x[400:], labels[400:])


def _train(
    data: Data, labels: list[str], seed: int, extra: list[str] | None = None
) -> AhuntLearner:
    learner = AhuntLearner(SPEC, list(SYNTHETIC_CLASSES), CONFIG, seed=seed)
    x, y = data.x_train, labels
    if extra:  # a few examples of classes the live model never saw
        x = np.concatenate([x, data.x_train[: len(extra)] * -1.0])
        y = [*labels, *extra]
    learner.fit(x, y, 4)
    learner.fit_detector(data.x_train)
    return learner


def _export(learner: AhuntLearner, root: Path, version: str) -> ModelUnderTest:
    out = root / version
    export_onnx(learner, out, version=version, survey="ztf", preprocessing=SURVEY_PREPROCESSING)
    return ModelUnderTest(*load_session(out))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gate")


@pytest.fixture(scope="module")
def live(data: Data, root: Path) -> ModelUnderTest:
    return _export(_train(data, data.y_train, seed=0), root, "ztf-0001")


@pytest.fixture(scope="module")
def equal(data: Data, root: Path) -> tuple[ModelUnderTest, np.ndarray]:
    learner = _train(data, data.y_train, seed=1)
    return _export(learner, root, "ztf-0002"), learner.predict(data.x_hold).probs


@pytest.fixture(scope="module")
def shuffled(data: Data, root: Path) -> ModelUnderTest:
    labels = [str(c) for c in np.random.default_rng(3).permutation(data.y_train)]
    return _export(_train(data, labels, seed=0), root, "ztf-0003")


def _gate(
    data: Data, candidate: ModelUnderTest, current: ModelUnderTest | None, **kw: object
) -> GateResult:
    return evaluate_gate(data.x_hold, data.y_hold, candidate, current, INTERESTS, GATE, **kw)  # type: ignore[arg-type]


def test_the_live_model_learned_the_synthetic_classes(data: Data, live: ModelUnderTest) -> None:
    result = _gate(data, live, None)
    recalls = [v for k, v in result.metrics.items() if k.startswith("recall/")]
    assert len(recalls) == 4 and min(recalls) > 0.6, result.metrics
    assert result.metrics["auroc/alice"] > 0.8


def test_an_equal_candidate_passes(
    data: Data, live: ModelUnderTest, equal: tuple[ModelUnderTest, np.ndarray]
) -> None:
    candidate, torch_probs = equal
    result = _gate(data, candidate, live, reference_probs=torch_probs)
    assert result.passed, result.summary()
    compared = {c.name for c in result.checks if c.status == "pass"}
    assert {
        "recall:transient",
        "interest_auroc:alice",
        "interest_auroc:bob",
        "parity:holdout",
    } <= compared
    assert any(c.name == "interest_auroc:carol" and c.status == "skip" for c in result.checks)


def test_the_live_model_passes_against_itself(data: Data, live: ModelUnderTest) -> None:
    assert _gate(data, live, live).passed


def test_a_candidate_trained_on_shuffled_labels_is_rejected(
    data: Data, live: ModelUnderTest, shuffled: ModelUnderTest
) -> None:
    result = _gate(data, shuffled, live)
    assert not result.passed
    assert "recall" in result.reasons and "interest_auroc" in result.reasons
    assert "recall:" in result.summary()
    # The other way round the shuffled model is the live one, and the good model passes.
    assert _gate(data, live, shuffled).passed


def _copy(model_dir: Path, to: Path) -> Path:
    shutil.copytree(model_dir, to)
    return to


def test_nan_weights_are_rejected(data: Data, live: ModelUnderTest, root: Path) -> None:
    path = _copy(root / "ztf-0001", root / "nan")
    model = onnx.load(str(path / "model.onnx"))
    target = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))  # the dense layer
    weights = numpy_helper.to_array(target).copy()
    weights[0] = np.nan
    target.CopyFrom(numpy_helper.from_array(weights, target.name))
    onnx.save(model, str(path / "model.onnx"))
    manifest = read_manifest(path).replace(sha256=sha256_file(path / "model.onnx"))
    write_manifest(path, manifest)
    result = _gate(data, ModelUnderTest(*load_session(path)), live)
    assert not result.passed and result.reasons == ["non_finite"]


def test_probs_wider_than_the_manifest_classes_are_rejected(
    data: Data, live: ModelUnderTest, root: Path
) -> None:
    path = _copy(root / "ztf-0001", root / "wide")
    manifest = read_manifest(path)
    write_manifest(path, manifest.replace(classes=[*manifest.classes, "lens"]))
    result = _gate(data, ModelUnderTest(*load_session(path)), live)
    assert not result.passed and result.reasons == ["output_shape"]
    assert "probs" in result.summary()


def test_torch_and_onnx_disagreeing_on_held_out_data_fails_parity(
    data: Data, live: ModelUnderTest, equal: tuple[ModelUnderTest, np.ndarray]
) -> None:
    candidate, torch_probs = equal
    result = _gate(data, candidate, live, reference_probs=torch_probs + 0.01)
    assert result.reasons == ["parity"]


def test_small_held_out_sets_skip_comparisons_and_say_why(
    data: Data, live: ModelUnderTest, shuffled: ModelUnderTest
) -> None:
    # Two examples per class: even a bad candidate cannot be judged on recall.
    keep = np.concatenate(
        [np.flatnonzero(np.asarray(data.y_hold) == c)[:2] for c in SYNTHETIC_CLASSES]
    )
    result = evaluate_gate(
        data.x_hold[keep], [data.y_hold[i] for i in keep], shuffled, live, INTERESTS, GATE
    )
    recall = [c for c in result.checks if c.kind == "recall"]
    assert recall and all(c.status == "skip" and "2 held-out < 5" in c.detail for c in recall)
    auroc_checks = [c for c in result.checks if c.kind == "interest_auroc"]
    assert all(c.status == "skip" for c in auroc_checks)
    assert result.passed  # nothing could be compared, and the outputs are sound


def test_a_new_class_is_not_compared_with_the_live_model(
    data: Data, live: ModelUnderTest, root: Path
) -> None:
    learner = _train(data, data.y_train, seed=2, extra=["lens"] * 12)
    grown = _export(learner, root, "ztf-0004")
    assert "lens" in grown.manifest.classes
    x = np.concatenate([data.x_hold, data.x_train[:12] * -1.0])
    y = [*data.y_hold, *["lens"] * 12]
    result = evaluate_gate(x, y, grown, live, INTERESTS, GATE)
    lens = next(c for c in result.checks if c.name == "recall:lens")
    assert lens.status == "skip" and "new class" in lens.detail
    assert result.metrics["recall/lens"] > 0.5


def test_learning_a_kind_out_of_the_unlabelled_pool_is_not_a_recall_loss(
    data: Data, live: ModelUnderTest, root: Path
) -> None:
    """The bootstrap pool's alerts are all called "artefact" here because nobody labelled them;
    12 of them are lenses that users have since labelled. The candidate that learnt lenses moves
    them out of "artefact": held to that name it would be rejected, and it is not."""
    grown = _export(_train(data, data.y_train, seed=2, extra=["lens"] * 12), root, "ztf-0005")
    x = np.concatenate([data.x_hold, data.x_train[:12] * -1.0])
    y = [*data.y_hold, *["artefact"] * 12]
    held_to_the_name = evaluate_gate(x, y, grown, live, INTERESTS, GATE)
    assert "recall:artefact" in held_to_the_name.summary() and not held_to_the_name.passed
    result = evaluate_gate(x, y, grown, live, INTERESTS, GATE, unlabelled_class="artefact")
    assert not any(c.name == "recall:artefact" for c in result.checks)
    pool = [c for c in result.checks if c.name == "pool:artefact"]
    assert len(pool) == 2 and all(c.status == "pass" for c in pool), result.summary()
    assert result.passed, result.summary()


def _outputs(probs: list[list[float]]) -> Outputs:
    p = np.asarray(probs, np.float32)
    return Outputs(np.zeros((len(p), 2), np.float32), p, np.zeros(len(p), np.float32))


# Columns: reserve, normal (the pool's name), star, sso, bogus.
POOL_CLASSES = ["reserve", "normal", "star", "sso", "bogus"]
NORMAL, STAR, SSO, BOGUS = ([0.0] * i + [1.0] + [0.0] * (4 - i) for i in range(1, 5))
HUNTERS = {"carol": Interest({"sso": 1.0}), "dave": Interest({"bogus": 1.0})}


def _pool(candidate: list[list[float]], live: list[list[float]]) -> list[Check]:
    labels = ["normal"] * len(candidate)
    return pool_checks(
        _outputs(candidate),
        POOL_CLASSES,
        _outputs(live),
        POOL_CLASSES,
        labels,
        HUNTERS,
        GATE,
        "normal",
    )


def test_a_real_sky_pool_spread_over_learnt_kinds_passes() -> None:
    """A pool of every kind (as on real sky): the candidate calls 20 of 40 stars, 8 asteroids
    and 4 bogus, where the live model (the bootstrap) called all of them "normal". Recall of
    "normal" falls from 1.0 to 0.2, which is learning, not loss."""
    candidate = [STAR] * 20 + [SSO] * 8 + [BOGUS] * 4 + [NORMAL] * 8
    checks = _pool(candidate, [NORMAL] * 40)
    assert [c.status for c in checks] == ["pass", "pass"], checks
    assert checks[0].candidate == pytest.approx(0.5) and checks[1].candidate == pytest.approx(0.3)


def test_a_pool_collapsed_into_one_class_fails_even_when_nobody_wants_it() -> None:
    checks = _pool([STAR] * 37 + [NORMAL] * 3, [NORMAL] * 40)
    assert [c.status for c in checks] == ["fail", "pass"]
    assert "92% of the pool called 'star'" in checks[0].detail
    # Where the live model had already collapsed as far, the candidate is no worse.
    assert [c.status for c in _pool([STAR] * 37 + [NORMAL] * 3, [STAR] * 38 + [NORMAL] * 2)] == [
        "pass",
        "pass",
    ]


def test_a_pool_flooded_with_wanted_classes_fails() -> None:
    """Half the pool asteroids and a third bogus: no single class collapsed, but the hunters'
    ranking would no longer separate anything."""
    checks = _pool([SSO] * 20 + [BOGUS] * 14 + [NORMAL] * 6, [NORMAL] * 40)
    assert [c.status for c in checks] == ["pass", "fail"]
    assert "85% of the pool called a wanted class" in checks[1].detail


def test_a_small_held_out_pool_is_not_judged() -> None:
    [check] = _pool([SSO] * 4, [NORMAL] * 4)
    assert check.status == "skip" and "4 held-out < 5" in check.detail


def test_the_unlabelled_class_exemption_does_not_pass_a_broken_candidate(
    data: Data, live: ModelUnderTest, shuffled: ModelUnderTest
) -> None:
    result = _gate(data, shuffled, live, unlabelled_class="artefact")
    assert not result.passed and "recall" in result.reasons


def test_without_a_live_model_only_the_outputs_are_checked(
    data: Data, live: ModelUnderTest
) -> None:
    result = evaluate_gate(data.x_hold[:0], [], live, None, INTERESTS, GATE, probe=data.x_train[:8])
    assert result.passed
    assert {c.kind for c in result.checks if c.status == "pass"} == {
        "output_shape",
        "non_finite",
        "invalid_probs",
        "parity",
    }


def test_recall_and_auroc_helpers() -> None:
    probs = np.array([[0.1, 0.9, 0.0], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    assert recall_per_class(probs, ["reserve", "a", "b"], ["a", "b", "b"]) == {"a": 1.0, "b": 0.5}
    assert auroc(np.array([0.9, 0.8, 0.1]), np.array([True, True, False])) == 1.0
    assert auroc(np.array([0.1, 0.8, 0.9]), np.array([True, True, False])) == 0.0
    with pytest.raises(ValueError):
        auroc(np.array([0.1]), np.array([True]))


def test_the_retrain_settings_are_the_gate_config() -> None:
    """One definition of the thresholds: the env-read settings are what the gate takes."""
    assert issubclass(RetrainSettings, GateConfig)
    assert set(GateConfig.model_fields) <= set(RetrainSettings.model_fields)
    assert RetrainSettings(recall_tolerance=0.1).recall_tolerance == 0.1
