"""The retrain service's pure parts: the stable held-out split, training epochs on a device,
learner states, and the loop's triggers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.learner import AhuntLearner, LearnerConfig
from models.preprocess import InputSpec
from services.retrain.dataset import Examples, concat, holdout_mask, id_fraction, split
from services.retrain.handler import AttemptState, backoff_s, due
from services.retrain.settings import RetrainSettings
from services.retrain.train import learner_bytes, learner_from_bytes, select_device

SPEC = InputSpec(1, 8, 8)


def _examples(n: int, label: str, prefix: str, value: float = 0.0) -> Examples:
    x = np.full((n, *SPEC.shape), value, np.float32)
    return Examples(tuple(f"{prefix}{i}" for i in range(n)), x, (label,) * n)


def test_the_split_is_stable_and_keeps_small_classes_for_training() -> None:
    data = concat([_examples(300, "normal", "n"), _examples(6, "lens", "l")])
    first = split(data, 0.2, 10)
    assert "lens" not in first.holdout.labels and first.train.counts()["lens"] == 6
    assert 30 < len(first.holdout) < 90
    # More data later: every example held out before is still held out (no version trains on it).
    grown = split(concat([data, _examples(100, "normal", "m")]), 0.2, 10)
    assert set(first.holdout.ids) <= set(grown.holdout.ids)
    assert all(id_fraction(i) < 0.2 for i in grown.holdout.ids)
    assert not set(grown.holdout.ids) & set(grown.train.ids)


def test_a_class_that_grows_past_the_minimum_gets_held_out_examples() -> None:
    ids = [f"l{i}" for i in range(40)]
    assert not holdout_mask(ids[:9], ["lens"] * 9, 0.3, 10).any()
    assert holdout_mask(ids, ["lens"] * 40, 0.3, 10).any()


def test_labels_win_over_the_pool_for_the_same_alert() -> None:
    pool = _examples(3, "normal", "a")
    label = Examples(("a1",), np.ones((1, *SPEC.shape), np.float32), ("lens",))
    joined = concat([pool, label])
    rows = zip(joined.ids, joined.labels, joined.x, strict=True)
    by_id = {i: (lab, float(x.max())) for i, lab, x in rows}
    assert by_id == {"a0": ("normal", 0.0), "a1": ("lens", 1.0), "a2": ("normal", 0.0)}
    with pytest.raises(ValueError, match="differ in length"):
        Examples(("a",), np.zeros((2, *SPEC.shape), np.float32), ("n",))


def _learner() -> tuple[AhuntLearner, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, *SPEC.shape)).astype(np.float32)
    x[32:] += 2.0
    learner = AhuntLearner(SPEC, ["a"], LearnerConfig(min_epoch_samples=64, augment="none"), seed=0)
    return learner, x


def test_fit_reports_each_epoch_and_grows_the_head() -> None:
    learner, x = _learner()
    seen: list[tuple[int, int, float]] = []
    report = learner.fit(
        x,
        ["a"] * 32 + ["b"] * 32,
        3,
        device=select_device("cpu"),
        on_epoch=lambda e, n, loss: seen.append((e, n, loss)),
    )
    assert [s[:2] for s in seen] == [(1, 3), (2, 3), (3, 3)]
    assert list(report.losses) == [s[2] for s in seen] and report.losses[-1] < report.losses[0]
    assert learner.classes == ["reserve", "a", "b"] and learner.counts == {"a": 32, "b": 32}
    assert next(learner.net.parameters()).device.type == "cpu" and not learner.net.training
    probs = learner.predict(x).probs
    assert (probs[:32, 1] > probs[:32, 2]).mean() > 0.8


def test_training_is_reproducible_and_the_state_round_trips_without_pickle() -> None:
    a, x = _learner()
    b, _ = _learner()
    labels = ["a"] * 32 + ["b"] * 32
    a.fit(x, labels, 2)
    b.fit(x, labels, 2)
    np.testing.assert_array_equal(a.predict(x).probs, b.predict(x).probs)
    a.fit_detector(x)
    restored = learner_from_bytes(learner_bytes(a))  # torch.load(weights_only=True)
    np.testing.assert_array_equal(restored.predict(x).novelty, a.predict(x).novelty)
    # Warm start: training the restored learner continues exactly like the original.
    a.fit(x, labels, 1)
    restored.fit(x, labels, 1)
    np.testing.assert_array_equal(a.predict(x).probs, restored.predict(x).probs)


def test_device_selection() -> None:
    assert select_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no GPU"):
            select_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_training_on_a_gpu_matches_the_cpu_path_closely() -> None:
    a, x = _learner()
    b, _ = _learner()
    labels = ["a"] * 32 + ["b"] * 32
    a.fit(x, labels, 2, device=torch.device("cpu"))
    b.fit(x, labels, 2, device=torch.device("cuda"))
    assert next(b.net.parameters()).device.type == "cpu"
    np.testing.assert_allclose(a.predict(x).probs, b.predict(x).probs, atol=1e-3)


def test_triggers() -> None:
    s = RetrainSettings(min_new_labels=10, interval_minutes=5, poll_s=2)
    fresh = AttemptState()  # never attempted: revision 0
    assert due(fresh, 10, 0.0, s) == "labels: 10 new since revision 0"
    last = AttemptState(revision=100, attempted_at=1_000.0)
    assert due(last, 109, 1_000.0 + 299, s) is None
    assert due(last, 110, 1_000.0 + 1, s) == "labels: 10 new since revision 100"
    assert due(last, 100, 1_000.0 + 300, s) == "interval: 5 min since the last attempt"
    assert [backoff_s(n, s) for n in (1, 2, 3, 20)] == [2.0, 4.0, 8.0, 300.0]
