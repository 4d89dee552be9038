"""The demo's baseline: an isolation forest on the night's pixels, with the same budget."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from services.common.alerts import Alert
from services.tools.demo.users import DemoUser


def baseline_shares(
    night_alerts: Sequence[Alert],
    classes: Sequence[str],
    budget: int,
    users: Sequence[DemoUser],
    seed: int,
) -> dict[str, list[str]]:
    """The isolation-forest-on-pixels baseline: per night, the ``budget`` most isolated alerts
    of the night's stamps (2x2-binned, preprocessed as the scorer does). The same picks go to
    every user (it has no notion of interest); returns the classes it would deliver."""
    from sklearn.ensemble import IsolationForest

    from models.preprocess import SURVEY_PREPROCESSING, ZTF_SPEC, prepare

    x = prepare([a.cutouts for a in night_alerts], ZTF_SPEC, SURVEY_PREPROCESSING)
    binned = x[:, :, :62, :62].reshape(len(x), 3, 31, 2, 31, 2).mean(axis=(3, 5))
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(binned.reshape(len(x), -1))
    isolation = -forest.score_samples(binned.reshape(len(x), -1))
    top = np.argsort(-isolation, kind="stable")[:budget]
    picked = [classes[i] for i in top]
    return {u.name: picked for u in users}
