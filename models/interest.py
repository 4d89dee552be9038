"""A user's interest as data, and the personal score it implies.

Interest is a weight per class name (the reserve included) plus a **reserve share**: the part of
the total weight the reserve keeps whatever the other weights are, so the user keeps exploring
unknown kinds after finding a first interesting class. Answers from the user change the weights:
"interesting" raises a class, "not interesting" sets it to exactly 0 (the class stays known to the
model, which is how boring but striking outliers stop using the user's attention). Nothing here is
a hard-coded switch: every policy is a field.

The personal score of an object is ``s(x) = sum_c w_c * p_c(x)`` over the model's outputs, with the
weights normalised to sum to 1. For many users at once it is one matrix product
(:func:`personal_scores`).

Exploration (the reserve's term, whose score mixes in the latent detector's novelty) is worth
nothing for an object the model confidently puts in a class the user said bores them: a satellite
streak stays novel to the detector long after the user has dismissed satellites. So the reserve's
term is scaled by ``1 - p(dismissed classes)``: a second matrix product (:func:`dismissed_matrix`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.taxonomy import RESERVE


@dataclass(frozen=True)
class Interest:
    """Weights per class name (>= 0) and the reserve's guaranteed share of the total weight.

    The reserve may carry its own weight in ``weights`` (to explore more than the floor); by
    default it has none and gets exactly ``reserve_share`` once another class has weight, and
    everything before (cold start).

    ``raise_to`` is the weight an "interesting" answer gives a class that had less.
    """

    weights: Mapping[str, float] = field(default_factory=dict)
    reserve_share: float = 0.2
    raise_to: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.reserve_share <= 1.0:
            raise ValueError(f"reserve_share must be in [0, 1], got {self.reserve_share}")
        for name, w in self.weights.items():
            if not np.isfinite(w) or w < 0:
                raise ValueError(f"weight of {name!r} must be finite and >= 0, got {w}")
        if self.raise_to <= 0:
            raise ValueError("raise_to must be > 0")

    def to_dict(self) -> dict[str, Any]:
        return {
            "weights": dict(self.weights),
            "reserve_share": self.reserve_share,
            "raise_to": self.raise_to,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Interest:
        return cls(
            weights=dict(d["weights"]),
            reserve_share=float(d["reserve_share"]),
            raise_to=float(d.get("raise_to", 1.0)),
        )


def answer(interest: Interest, label: str, interesting: bool | None) -> Interest:
    """The interest after the user labelled an object ``label`` and said whether it interests them.

    ``True`` raises the class to at least ``raise_to``; ``False`` sets it to 0; ``None`` leaves
    the interest unchanged (a label without an opinion).

    >>> i = answer(Interest(), "lens", True)
    >>> sorted(i.weights.items())
    [('lens', 1.0)]
    >>> sorted(answer(i, "lens", False).weights.items())
    [('lens', 0.0)]
    """
    if interesting is None:
        return interest
    weights = dict(interest.weights)
    if interesting:
        weights[label] = max(weights.get(label, 0.0), interest.raise_to)
    else:
        weights[label] = 0.0
    return Interest(weights, interest.reserve_share, interest.raise_to)


def weight_vector(interest: Interest, classes: Sequence[str]) -> np.ndarray:
    """Normalised weights aligned with the model's ``classes`` (``classes[0]`` is the reserve).

    Classes the model does not know yet are ignored. The non-reserve weights are scaled to share
    ``1 - reserve_share`` (if any is positive) and the reserve gets at least ``reserve_share``;
    with no positive class weight the reserve gets everything (cold start: pure exploration).

    >>> weight_vector(Interest({"lens": 3.0, "noise": 0.0}), ["reserve", "noise", "lens"])
    array([0.2, 0. , 0.8])
    >>> weight_vector(Interest({"reserve": 1.0, "lens": 1.0}), ["reserve", "lens"])
    array([0.5, 0.5])
    >>> weight_vector(Interest(), ["reserve", "normal"])
    array([1., 0.])
    """
    if not classes or classes[0] != RESERVE:
        raise ValueError(f"classes must start with {RESERVE!r}")
    w = np.array([interest.weights.get(c, 0.0) for c in classes], dtype=np.float64)
    known = w[1:].sum()
    if known <= 0:
        out = np.zeros_like(w)
        out[0] = 1.0
        return out
    total = w.sum()
    reserve = max(w[0] / total, interest.reserve_share)
    out = np.empty_like(w)
    out[0] = reserve
    out[1:] = w[1:] / known * (1.0 - reserve)
    return out


def weight_matrix(interests: Sequence[Interest], classes: Sequence[str]) -> np.ndarray:
    """(U, K+1) float32 matrix of normalised weights, one row per user."""
    return np.stack([weight_vector(i, classes) for i in interests]).astype(np.float32)


def dismissed_classes(interests: Sequence[Interest], classes: Sequence[str]) -> np.ndarray:
    """(U, K+1) float32 indicator: 1 where the user said the known class bores them (an explicit
    weight of 0). ``probs @ dismissed_classes(...).T`` is each user's p(a class they dismissed).

    >>> dismissed_classes([Interest({"lens": 1.0, "streak": 0.0})], ["reserve", "lens", "streak"])
    array([[0., 0., 1.]], dtype=float32)
    """
    return np.array(
        [
            [k > 0 and i.weights.get(c, None) == 0.0 for k, c in enumerate(classes)]
            for i in interests
        ],
        dtype=np.float32,
    ).reshape(len(interests), len(classes))


def dismissed_matrix(
    interests: Sequence[Interest],
    classes: Sequence[str],
    *,
    weights: np.ndarray | None = None,
    dismissed: np.ndarray | None = None,
) -> np.ndarray:
    """(U, K+1) float32: for each user, their reserve weight on the known classes they said
    bore them (an explicit weight of 0), else 0. See :func:`personal_scores`. A caller that
    already has :func:`weight_matrix` or :func:`dismissed_classes` passes them in.

    >>> dismissed_matrix([Interest({"lens": 1.0, "streak": 0.0})], ["reserve", "lens", "streak"])
    array([[0. , 0. , 0.2]], dtype=float32)
    """
    if weights is None:
        weights = weight_matrix(interests, classes)
    if dismissed is None:
        dismissed = dismissed_classes(interests, classes)
    return np.asarray(dismissed * weights[:, :1], dtype=np.float32)


def personal_scores(
    class_scores: np.ndarray,
    weights: np.ndarray,
    probs: np.ndarray | None = None,
    dismissed: np.ndarray | None = None,
) -> np.ndarray:
    """Scores (N, U) of N objects for U users: ``class_scores (N, K+1) @ weights.T``.

    ``class_scores`` are the class probabilities, optionally with the reserve column replaced by
    :func:`exploration_scores`. With ``probs`` (the model's probabilities) and ``dismissed``
    (:func:`dismissed_matrix`) the reserve's term of each user is scaled by ``1 - p(classes that
    user dismissed)``. Matrix products, so 1,000 users cost little more than one.

    >>> probs = np.array([[0.1, 0.0, 0.9]], dtype=np.float32)  # confidently a "streak"
    >>> explore = np.array([[0.8, 0.0, 0.9]], dtype=np.float32)  # ... yet novel
    >>> users = [Interest({"lens": 1.0}), Interest({"lens": 1.0, "streak": 0.0})]
    >>> classes = ["reserve", "lens", "streak"]
    >>> w = weight_matrix(users, classes)
    >>> personal_scores(explore, w).astype(float).round(3).tolist()
    [[0.16, 0.16]]
    >>> personal_scores(explore, w, probs, dismissed_matrix(users, classes)).astype(float).round(3)
    array([[0.16 , 0.016]])
    """
    scores = np.asarray(class_scores, dtype=np.float32) @ np.asarray(weights, dtype=np.float32).T
    if dismissed is not None and probs is not None:
        dismissed_mass = np.asarray(probs, dtype=np.float32) @ np.asarray(dismissed).T  # (N, U)
        scores -= np.asarray(class_scores, dtype=np.float32)[:, :1] * dismissed_mass
    return np.asarray(scores)


def exploration_scores(probs: np.ndarray, novelty: np.ndarray, novelty_mix: float) -> np.ndarray:
    """Class scores whose reserve column mixes p(reserve) with the latent detector's novelty.

    ``novelty`` (>= 0, 1 = the 95th percentile of the detector's reference data) is squashed to
    [0, 1) by ``n / (1 + n)`` so it is commensurate with a probability; ``novelty_mix`` in [0, 1]
    is the detector's share. NaN novelty (no detector yet) leaves p(reserve) unchanged.
    """
    if not 0.0 <= novelty_mix <= 1.0:
        raise ValueError("novelty_mix must be in [0, 1]")
    out = np.array(probs, dtype=np.float32, copy=True)
    nov = np.asarray(novelty, dtype=np.float32)
    ok = np.isfinite(nov)
    squashed = np.where(ok, nov / (1.0 + np.where(ok, nov, 0.0)), 0.0)
    out[:, 0] = np.where(ok, (1.0 - novelty_mix) * out[:, 0] + novelty_mix * squashed, out[:, 0])
    return out
