"""Interest arithmetic: answers, normalised weights, personal scores for many users."""

from __future__ import annotations

import numpy as np
import pytest

from models.interest import (
    Interest,
    answer,
    exploration_scores,
    personal_scores,
    weight_matrix,
    weight_vector,
)

CLASSES = ["reserve", "normal", "lens", "streak"]


def test_cold_start_is_pure_exploration() -> None:
    assert weight_vector(Interest(), CLASSES).tolist() == [1.0, 0.0, 0.0, 0.0]


def test_interesting_answer_raises_and_keeps_reserve_share() -> None:
    i = answer(Interest(reserve_share=0.25), "lens", True)
    w = weight_vector(i, CLASSES)
    assert w.tolist() == pytest.approx([0.25, 0.0, 0.75, 0.0])
    assert w.sum() == pytest.approx(1.0)


def test_not_interesting_sets_exactly_zero_even_after_interest() -> None:
    i = answer(answer(Interest(), "streak", True), "streak", False)
    assert i.weights["streak"] == 0.0
    assert weight_vector(i, CLASSES).tolist() == [1.0, 0.0, 0.0, 0.0]


def test_no_opinion_changes_nothing_and_raise_is_not_cumulative() -> None:
    i = answer(Interest(), "lens", True)
    assert answer(i, "normal", None) == i
    assert answer(i, "lens", True).weights["lens"] == 1.0


def test_explicit_reserve_weight_above_the_floor() -> None:
    i = Interest({"reserve": 1.0, "lens": 1.0}, reserve_share=0.1)
    assert weight_vector(i, CLASSES).tolist() == pytest.approx([0.5, 0.0, 0.5, 0.0])


def test_classes_unknown_to_the_model_are_ignored() -> None:
    i = Interest({"lens": 1.0, "ring": 3.0})
    assert weight_vector(i, CLASSES).tolist() == pytest.approx([0.2, 0.0, 0.8, 0.0])


@pytest.mark.parametrize("bad", [{"lens": -1.0}, {"lens": float("nan")}])
def test_invalid_weights_are_rejected(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Interest(bad)


def test_personal_scores_match_per_user_sums(rng: np.random.Generator) -> None:
    probs = rng.dirichlet(np.ones(len(CLASSES)), size=50).astype(np.float32)
    users = [Interest(), answer(Interest(), "lens", True), Interest({"streak": 2.0, "lens": 1.0})]
    w = weight_matrix(users, CLASSES)
    s = personal_scores(probs, w)
    assert s.shape == (50, 3)
    for u in range(3):
        assert np.allclose(s[:, u], (probs * w[u]).sum(1), atol=1e-6)


def test_exploration_mixes_novelty_into_reserve_only() -> None:
    probs = np.array([[0.1, 0.9, 0.0, 0.0], [0.3, 0.7, 0.0, 0.0]], np.float32)
    out = exploration_scores(probs, np.array([1.0, np.nan], np.float32), novelty_mix=0.5)
    assert out[0, 0] == pytest.approx(0.5 * 0.1 + 0.5 * 0.5)
    assert out[1, 0] == pytest.approx(0.3)  # no detector yet: unchanged
    assert np.array_equal(out[:, 1:], probs[:, 1:])
