"""Question selection: budget split, never the same object twice, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.questions import StrategyMix, select_questions, split_budget

CLASSES = ["reserve", "normal", "lens"]


def test_split_budget_by_weight_with_at_least_one() -> None:
    assert split_budget(5, [0.2, 0.0, 0.8]) == [1, 0, 4]
    assert split_budget(1, [0.2, 0.0, 0.8]) == [0, 0, 1]
    assert split_budget(10, [1, 1, 1], at_least_one=False) == [4, 3, 3]
    assert sum(split_budget(7, [0.3, 0.3, 0.4])) == 7


def test_top_asks_highest_scores_per_class() -> None:
    ids = np.arange(6)
    scores = np.array(
        [[0.9, 0, 0.1], [0.1, 0, 0.95], [0.8, 0, 0.2], [0.0, 0, 0.9], [0.7, 0, 0.0], [0.0, 0, 0.0]]
    )
    q = select_questions(ids, scores, CLASSES, np.array([0.4, 0.0, 0.6]), 4)
    assert [(x.object_id, x.target) for x in q] == [
        (1, "lens"),
        (3, "lens"),
        (0, "reserve"),
        (2, "reserve"),
    ]
    assert q[0].reason == "top:lens"


def test_no_repeat_across_classes_within_a_round() -> None:
    # Object 0 tops both rankings: it must be asked once, the second class takes the next one.
    ids = np.array([10, 11, 12])
    scores = np.array([[0.9, 0, 0.9], [0.5, 0, 0.1], [0.1, 0, 0.5]])
    q = select_questions(ids, scores, CLASSES, np.array([0.5, 0.0, 0.5]), 2)
    assert sorted(x.object_id for x in q) == [10, 12] or sorted(x.object_id for x in q) == [10, 11]
    assert len({x.object_id for x in q}) == 2


def test_excluded_objects_are_never_asked_again() -> None:
    ids = np.arange(5)
    scores = np.tile(np.array([[1.0, 0, 0]]), (5, 1)) * np.arange(5)[:, None]
    q = select_questions(ids, scores, CLASSES, np.array([1.0, 0, 0]), 2, exclude={4, 3})
    assert [x.object_id for x in q] == [2, 1]


def test_ties_are_broken_by_id_deterministically() -> None:
    ids = np.array([7, 3, 5])
    scores = np.ones((3, 3))
    q = select_questions(ids, scores, CLASSES, np.array([1.0, 0, 0]), 3)
    assert [x.object_id for x in q] == [3, 5, 7]


def test_uncertain_prefers_scores_near_half() -> None:
    ids = np.arange(4)
    scores = np.zeros((4, 3))
    scores[:, 2] = [0.99, 0.45, 0.1, 0.6]
    q = select_questions(
        ids, scores, CLASSES, np.array([0, 0, 1.0]), 2, StrategyMix({"uncertain": 1.0})
    )
    assert [x.object_id for x in q] == [1, 3]


def test_mixture_splits_the_budget_and_records_reasons() -> None:
    ids = np.arange(100)
    scores = np.zeros((100, 3))
    scores[:, 0] = np.linspace(0, 1, 100)
    q = select_questions(
        ids,
        scores,
        CLASSES,
        np.array([1.0, 0, 0]),
        10,
        StrategyMix.parse("top:0.8,random:0.2"),
        rng=np.random.default_rng(1),
    )
    assert [x.strategy for x in q].count("top") == 8
    assert [x.strategy for x in q].count("random") == 2
    assert [x.object_id for x in q[:8]] == list(range(99, 91, -1))


def test_random_is_reproducible_with_the_same_generator() -> None:
    ids = np.arange(50)
    scores = np.random.default_rng(0).random((50, 3))
    picks = [
        [
            x.object_id
            for x in select_questions(
                ids,
                scores,
                CLASSES,
                np.array([1.0, 0, 0]),
                5,
                StrategyMix({"random": 1.0}),
                rng=np.random.default_rng(9),
            )
        ]
        for _ in range(2)
    ]
    assert picks[0] == picks[1]


def test_budget_is_topped_up_when_a_class_runs_out() -> None:
    ids = np.arange(3)
    scores = np.random.default_rng(0).random((3, 3))
    q = select_questions(ids, scores, CLASSES, np.array([0.5, 0.0, 0.5]), 5)
    assert sorted(x.object_id for x in q) == [0, 1, 2]


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError):
        select_questions(np.arange(3), np.zeros((3, 2)), CLASSES, np.ones(3), 1)


def test_parse_rejects_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="unknown strategy"):
        StrategyMix.parse("top:0.5,best:0.5")


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    budget=st.integers(0, 50),
    seed=st.integers(0, 10**6),
    mix=st.sampled_from(
        ["top", "uncertain", "random", "top:0.7,random:0.3", "top:0.5,uncertain:0.25,random:0.25"]
    ),
)
def test_property_distinct_unasked_and_full_budget(
    n: int, budget: int, seed: int, mix: str
) -> None:
    r = np.random.default_rng(seed)
    ids = r.permutation(1000)[:n]
    scores = r.random((n, 3)).round(1)  # rounding creates ties
    weights = r.dirichlet(np.ones(3))
    exclude = set(ids[: n // 3].tolist())
    q = select_questions(
        ids, scores, CLASSES, weights, budget, StrategyMix.parse(mix), exclude=exclude, rng=r
    )
    asked = [x.object_id for x in q]
    assert len(asked) == len(set(asked))
    assert not set(asked) & exclude
    assert len(asked) == min(budget, n - len(exclude))
