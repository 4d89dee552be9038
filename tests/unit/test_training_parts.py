"""Sampling, augmentation, losses and the latent detector: the pieces the learner trains with."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.augment import augment, dihedral
from models.detector import fit_knn_detector
from models.learner import AhuntLearner, LearnerConfig
from models.losses import classification_loss
from models.preprocess import InputSpec
from models.sampling import balanced_sample_weights


def test_sampling_balances_classes_within_the_cap() -> None:
    targets = np.array([1] * 90 + [2] * 10)
    w = balanced_sample_weights(targets, max_oversample=100.0)
    assert w.sum() == pytest.approx(1.0)
    assert w[targets == 1].sum() == pytest.approx(0.5) and w[targets == 2].sum() == pytest.approx(
        0.5
    )


def test_sampling_never_oversamples_beyond_the_cap() -> None:
    targets = np.array([1] * 397 + [2] * 3)
    w = balanced_sample_weights(targets, max_oversample=10.0)
    # Full balance would draw each anomaly ~67x as often as uniform sampling; the cap holds it
    # at 10x, so an epoch of 400 draws shows each of the 3 anomalies ~10 times, not ~67.
    assert w[targets == 2].max() * len(targets) == pytest.approx(10.0)
    assert w.sum() == pytest.approx(1.0)


def test_d4_is_the_dihedral_group() -> None:
    x = torch.arange(9.0).reshape(1, 1, 3, 3)
    images = {tuple(dihedral(x, e).flatten().tolist()) for e in range(8)}
    assert len(images) == 8  # eight distinct symmetries
    for e in range(8):
        y = dihedral(x, e)
        assert sorted(y.flatten().tolist()) == list(range(9))  # exact: pixels only move


def test_augmentation_is_reproducible_and_label_preserving_in_shape() -> None:
    x = torch.randn(32, 3, 63, 63)
    a = augment(x, "d4+shift", torch.Generator().manual_seed(1))
    b = augment(x, "d4+shift", torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape
    assert torch.equal(augment(x, "none", torch.Generator()), x)
    with pytest.raises(ValueError, match="square"):
        augment(torch.zeros(2, 1, 4, 5), "d4", torch.Generator())


def test_focal_loss_downweights_easy_examples() -> None:
    logits = torch.tensor([[0.0, 5.0, 0.0], [0.0, 0.1, 0.0]])
    targets = torch.tensor([1, 1])
    ce = classification_loss(logits, targets, "ce")
    focal = classification_loss(logits, targets, "focal", focal_gamma=2.0)
    assert focal < ce
    assert classification_loss(logits, targets, "focal", focal_gamma=0.0) == pytest.approx(
        float(ce)
    )


def test_label_smoothing_spares_the_reserve() -> None:
    logits = torch.tensor([[0.3, 2.0, -1.0, 0.5]], requires_grad=True)
    targets = torch.tensor([1])
    plain = classification_loss(logits, targets, "ce", label_smoothing=0.0)
    assert float(plain.detach()) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits, targets).detach())
    )
    smooth = classification_loss(logits, targets, "ce", label_smoothing=0.2)
    log_p = torch.log_softmax(logits, dim=1)[0]
    expected = -(0.8 * log_p[1] + 0.1 * log_p[2] + 0.1 * log_p[3])
    assert float(smooth.detach()) == pytest.approx(float(expected.detach()))
    smooth.backward()
    assert logits.grad is not None and float(logits.grad[0, 0]) > 0  # reserve still pushed down
    with pytest.raises(ValueError, match="label_smoothing"):
        LearnerConfig(label_smoothing=1.0)


def test_config_from_an_older_state_resumes_without_smoothing() -> None:
    old = LearnerConfig().to_dict()
    del old["label_smoothing"]
    assert LearnerConfig.from_dict(old).label_smoothing == 0.0
    assert LearnerConfig.from_dict(LearnerConfig().to_dict()) == LearnerConfig()


def test_knn_detector_ranks_outliers_above_inliers(rng: np.random.Generator) -> None:
    inliers = rng.normal(size=(500, 16)) + 5.0
    det = fit_knn_detector(inliers, k=5, seed=0)
    inside = det(torch.as_tensor(rng.normal(size=(50, 16)) + 5.0, dtype=torch.float32))
    outside = det(torch.as_tensor(rng.normal(size=(50, 16)) - 5.0, dtype=torch.float32))
    assert outside.min() > inside.max()
    assert 0.5 < float(inside.median()) < 1.5  # scale: ~1 at the reference's 95th percentile


def test_detector_bank_is_bounded_and_seeded(rng: np.random.Generator) -> None:
    z = rng.normal(size=(3000, 8))
    a, b = fit_knn_detector(z, max_bank=256, seed=3), fit_knn_detector(z, max_bank=256, seed=3)
    assert a.bank.shape == (256, 8) and torch.equal(a.bank, b.bank)
    with pytest.raises(ValueError):
        fit_knn_detector(z[:1])


def test_cold_start_novelty_before_any_label(rng: np.random.Generator) -> None:
    """A bootstrap on one unlabelled class already ranks strange stamps as novel."""
    normal = rng.normal(size=(200, 1, 8, 8)).astype(np.float32)
    learner = AhuntLearner(
        InputSpec(1, 8, 8),
        ["normal"],
        LearnerConfig(pretrain_epochs=1, min_epoch_samples=64),
        seed=0,
    )
    learner.fit(normal, ["normal"] * 200)
    learner.fit_detector(normal)
    fresh = rng.normal(size=(20, 1, 8, 8)).astype(np.float32)
    odd = fresh.copy()
    odd[:, :, 2:6, 2:6] += 8.0
    pred = learner.predict(np.concatenate([fresh, odd]))
    assert pred.novelty[20:].min() > pred.novelty[:20].max()
