"""The calibration row of the real-alert benchmark: how well the weak labels can be learnt from
pixels at all. A gradient-boosted model (scikit-learn's HistGradientBoosting) is given every
label of the train side (bootstrap, the whole pool and the alerts no night drew; split by object
as for the protocol) and the central 21x21 pixels of the three stamps, and scores the same
held-out test split as the protocol's methods. No active learning: an upper reference that AHUNT,
with a few answers a night, is not expected to reach.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.paper import metrics
from bench.paper.real_alerts import crop_centre
from bench.paper.real_stream import codes, data_for, roles, split_objects
from bench.paper.scenario import ScenarioConfig

CALIBRATION_CROP = 21


def calibration_scores(config: ScenarioConfig, seed: int) -> dict[str, float]:
    """Held-out AUROC / AP of the supervised model for each hunted class (``auroc`` and ``ap``
    for the anomaly; with two users also ``auroc@<distractor>``)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    data = data_for(config)
    y_all = codes(data, config)
    idx = np.flatnonzero(np.isin(y_all, roles(config)))
    # The same generator calls as build_real_stream, so the held-out objects are the same.
    held = split_objects(
        data.objects[idx], y_all[idx], config.test_fraction, np.random.default_rng(seed)
    )
    x = crop_centre(np.asarray(data.x[idx]), CALIBRATION_CROP).reshape(len(idx), -1)
    y = y_all[idx]
    # One OpenMP thread: seeds already run one per core. With the default (one per core) the
    # seed workers on the loaded shared machine spent nearly as much CPU in a second thread as
    # in the main one; with one thread a fit costs ~12 s of CPU.
    with threadpool_limits(limits=1):
        model = HistGradientBoostingClassifier(random_state=seed).fit(x[~held], y[~held])
        probs = model.predict_proba(x[held])
    column = {int(c): i for i, c in enumerate(model.classes_)}
    out: dict[str, float] = {}
    targets: list[tuple[str, int]] = [("", config.anomaly)]
    if config.two_users and config.distractor is not None:
        targets.append((f"@{config.class_names[config.distractor]}", config.distractor))
    for suffix, c in targets:
        is_target = y[held] == c
        out[f"auroc{suffix}"] = metrics.auroc(probs[:, column[c]], is_target)
        out[f"ap{suffix}"] = metrics.average_precision(probs[:, column[c]], is_target)
    return out


def summarize(per_seed: list[dict[str, float]]) -> dict[str, Any]:
    return {key: metrics.summarize([s[key] for s in per_seed]) for key in per_seed[0]}
