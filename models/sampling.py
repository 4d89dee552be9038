"""Class-balanced sampling that does not turn a few anomalies into hundreds of copies."""

from __future__ import annotations

import numpy as np


def balanced_sample_weights(targets: np.ndarray, max_oversample: float) -> np.ndarray:
    """Per-example sampling probabilities (summing to 1) for drawing a training epoch.

    Each class gets an equal share of the draws, except that no example is drawn more than
    ``max_oversample`` times as often as uniform sampling would draw it. With 3 anomalies among 400
    normals, full balance would draw each anomaly ~67 times per epoch; the cap keeps that to
    ``max_oversample`` and gives the rest of the epoch back to the common classes.

    >>> w = balanced_sample_weights(np.array([0, 0, 0, 1]), max_oversample=10.0)
    >>> [round(float(v), 3) for v in w]
    [0.167, 0.167, 0.167, 0.5]
    >>> w = balanced_sample_weights(np.array([0] * 98 + [1, 2]), max_oversample=2.0)
    >>> round(float(w[-1] * 100), 3)  # drawn at most 2x as often as uniform
    2.0
    """
    targets = np.asarray(targets)
    if targets.size == 0:
        raise ValueError("no training examples")
    classes, inverse, counts = np.unique(targets, return_inverse=True, return_counts=True)
    n = targets.size
    balanced = 1.0 / (len(classes) * counts[inverse])
    capped = np.minimum(balanced, max_oversample / n)
    # Give the probability mass removed by the cap to the uncapped examples, keeping their
    # relative balance, so every draw still goes somewhere sensible.
    free = capped >= balanced
    deficit = 1.0 - capped.sum()
    if free.all() or deficit <= 0:
        return capped / capped.sum()
    capped[free] += deficit * capped[free] / capped[free].sum()
    return capped / capped.sum()
