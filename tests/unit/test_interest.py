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


def test_dismissing_a_class_removes_exploration_of_objects_in_it_and_only_for_that_user() -> None:
    from models.interest import dismissed_matrix, exploration_scores, personal_scores

    classes = ["reserve", "normal", "satellite", "lens"]
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(4), size=200).astype(np.float32)
    novelty = rng.exponential(1.0, size=200).astype(np.float32)
    explore = exploration_scores(probs, novelty, 0.5)
    users = [Interest({"lens": 1.0}), Interest({"lens": 1.0, "satellite": 0.0})]
    w = weight_matrix(users, classes)
    plain = personal_scores(explore, w)
    aware = personal_scores(explore, w, probs, dismissed_matrix(users, classes))
    np.testing.assert_array_equal(aware[:, 0], plain[:, 0])  # nothing dismissed: unchanged
    assert np.all(aware[:, 1] <= plain[:, 1] + 1e-7) and np.all(aware[:, 1] >= 0)
    # The exploration lost is exactly the reserve term times p(satellite).
    expected = plain[:, 1] - w[1, 0] * explore[:, 0] * probs[:, 2]
    np.testing.assert_allclose(aware[:, 1], expected, rtol=1e-5, atol=1e-6)
    # A confident satellite now ranks below the same object confidently "normal".
    sat = np.array([[0.05, 0.0, 0.95, 0.0]], dtype=np.float32)
    nor = np.array([[0.05, 0.95, 0.0, 0.0]], dtype=np.float32)
    nov = np.array([5.0], dtype=np.float32)
    d = dismissed_matrix(users, classes)
    s_sat = personal_scores(exploration_scores(sat, nov, 0.5), w, sat, d)[0, 1]
    s_nor = personal_scores(exploration_scores(nor, nov, 0.5), w, nor, d)[0, 1]
    assert s_sat < 0.2 * s_nor
