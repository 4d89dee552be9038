"""Ranking metrics of the paper's evaluation protocol plus held-out AUROC / AP.

All functions take numpy arrays: `scores` (higher = more anomalous) and `is_anomaly` (bool or 0/1),
one entry per object in the pool. Undefined values (no anomalies, one class only) are nan rather
than errors, so a night with nothing to find does not abort a benchmark run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _as_inputs(scores: np.ndarray, is_anomaly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(is_anomaly).ravel().astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"scores has {s.size} entries but is_anomaly has {y.size}")
    return s, y


def _ranked_labels(scores: np.ndarray, is_anomaly: np.ndarray) -> np.ndarray:
    """Labels sorted by score descending; ties keep index order (stable) for reproducibility."""
    order = np.argsort(-scores, kind="stable")
    return is_anomaly[order]


def rws(scores: np.ndarray, is_anomaly: np.ndarray) -> float:
    """Rank-weighted score: sum_{k<=N} (N+1-k) y_k / (N(N+1)/2), N = number of anomalies.

    1 means the N anomalies occupy the top N ranks; the weights reward hits near the top.

    >>> rws(np.array([0.9, 0.8, 0.1]), np.array([1, 1, 0]))
    1.0
    >>> rws(np.array([0.9, 0.8, 0.1]), np.array([0, 1, 1]))  # N=2, only rank 2 hits: 1/3
    0.3333333333333333
    >>> rws(np.array([0.5, 0.5]), np.array([0, 0]))
    nan
    """
    s, y = _as_inputs(scores, is_anomaly)
    n = int(y.sum())
    if n == 0:
        return math.nan
    top = _ranked_labels(s, y)[:n]
    weights = np.arange(n, 0, -1, dtype=np.float64)  # N, N-1, ..., 1 for ranks 1..N
    return float(np.dot(weights, top) / (n * (n + 1) / 2))


def r_precision(scores: np.ndarray, is_anomaly: np.ndarray) -> float:
    """Fraction of anomalies among the top N ranked objects (N = number of anomalies).

    >>> r_precision(np.array([0.9, 0.8, 0.7, 0.1]), np.array([1, 0, 1, 0]))
    0.5
    >>> r_precision(np.array([0.1]), np.array([0]))
    nan
    """
    s, y = _as_inputs(scores, is_anomaly)
    n = int(y.sum())
    if n == 0:
        return math.nan
    return float(_ranked_labels(s, y)[:n].mean())


def mcc_from_r_precision(r: float, n_anomalies: int, pool_size: int) -> float:
    """MCC under top-N thresholding: (r - pi) / (1 - pi) with pi = N / pool size.

    With exactly N predicted positives, precision = recall = r, so MCC is a rescaling of r that
    puts a random ranking at 0. nan when undefined (no anomalies, or all objects anomalous).

    >>> mcc_from_r_precision(1.0, 10, 100)
    1.0
    >>> round(mcc_from_r_precision(0.1, 10, 100), 12)  # random ranking
    0.0
    >>> mcc_from_r_precision(0.5, 0, 100)
    nan
    """
    if pool_size <= 0:
        raise ValueError(f"pool_size must be positive, got {pool_size}")
    if not 0 <= n_anomalies <= pool_size:
        raise ValueError(f"n_anomalies must be in [0, {pool_size}], got {n_anomalies}")
    if n_anomalies == 0 or n_anomalies == pool_size or math.isnan(r):
        return math.nan
    pi = n_anomalies / pool_size
    return (r - pi) / (1.0 - pi)


def _both_classes(y: np.ndarray) -> bool:
    return bool(y.any()) and not bool(y.all())


def auroc(scores: np.ndarray, is_anomaly: np.ndarray) -> float:
    """Area under the ROC curve (scikit-learn); nan when only one class is present.

    >>> auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    0.75
    >>> auroc(np.array([0.1, 0.2]), np.array([1, 1]))
    nan
    """
    from sklearn.metrics import roc_auc_score  # lazy: sklearn is an optional extra

    s, y = _as_inputs(scores, is_anomaly)
    if not _both_classes(y):
        return math.nan
    return float(roc_auc_score(y, s))


def average_precision(scores: np.ndarray, is_anomaly: np.ndarray) -> float:
    """Average precision (scikit-learn); nan when only one class is present.

    >>> round(average_precision(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])), 6)
    0.833333
    >>> average_precision(np.array([0.1, 0.2]), np.array([0, 0]))
    nan
    """
    from sklearn.metrics import average_precision_score  # lazy: sklearn is an optional extra

    s, y = _as_inputs(scores, is_anomaly)
    if not _both_classes(y):
        return math.nan
    return float(average_precision_score(y, s))


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Mean and population std (ddof=0) over seeds, ignoring nans; both nan if nothing is left.

    >>> summarize([1.0, 3.0])
    {'mean': 2.0, 'std': 1.0}
    >>> summarize([2.0, float("nan")])
    {'mean': 2.0, 'std': 0.0}
    >>> summarize([])
    {'mean': nan, 'std': nan}
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    finite = arr[~np.isnan(arr)]
    if finite.size == 0:
        return {"mean": math.nan, "std": math.nan}
    return {"mean": float(finite.mean()), "std": float(finite.std(ddof=0))}
