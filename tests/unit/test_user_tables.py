"""The scorer's per-user tables are computed once per list of profiles (not per batch) and equal
what the per-batch computation gave; a changed list is recomputed."""

from __future__ import annotations

import numpy as np

from models.interest import dismissed_classes, dismissed_matrix, weight_matrix
from services.common.users import Filters, UserProfile
from services.scorer.handler import user_tables

CLASSES = ["reserve", "lens", "streak"]


def _users() -> list[UserProfile]:
    return [
        UserProfile(name="a", weights={"lens": 1.0, "streak": 0.0}),
        UserProfile(name="b", weights={"streak": 0.5}, filters=Filters(min_magnitude=15.0)),
        UserProfile(name="c"),
    ]


def test_tables_equal_the_per_batch_computation_and_are_reused() -> None:
    users = _users()
    tables = user_tables(users, CLASSES)
    interests = [u.interest for u in users]
    np.testing.assert_array_equal(tables.weights, weight_matrix(interests, CLASSES))
    np.testing.assert_array_equal(tables.dismissed, dismissed_classes(interests, CLASSES))
    np.testing.assert_array_equal(tables.dismissed_weights, dismissed_matrix(interests, CLASSES))
    assert tables.filtered == (1,)  # only b has a filter
    assert user_tables(users, CLASSES) is tables  # the same profiles: not recomputed
    assert user_tables(list(users), CLASSES) is tables  # a copy of the list holds the same ones


def test_a_changed_profile_or_other_classes_are_recomputed() -> None:
    users = _users()
    tables = user_tables(users, CLASSES)
    changed = [users[0].model_copy(update={"weights": {"lens": 0.0}}), *users[1:]]
    again = user_tables(changed, CLASSES)
    assert again is not tables and again.dismissed[0, 1] == 1.0  # a now dismisses lenses
    other = user_tables(users, ["reserve", "lens"])
    assert other is not tables and other.weights.shape == (3, 2)
