"""Training and held-out examples: pure functions over arrays (no Redis; see ``storage``).

The held-out split is **stable**: an example is held out when a hash of its id falls below the
holdout fraction, so the same alert is held out by every version and no version ever trains on
what the gate measures. Classes with fewer than ``min_class`` labelled examples are kept whole
for training (a class of 3 examples needs all 3 to be learned at all); the gate then records
that it could not compare that class. When such a class grows past ``min_class`` its hashed
share moves to the held-out side once, examples the live model may have trained on: that biases
the comparison towards the live model, i.e. towards rejecting, which is the safe direction.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Examples:
    """Preprocessed stamps ``x`` (N, C, H, W) with their alert ids and class names."""

    ids: tuple[str, ...]
    x: np.ndarray
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.x) == len(self.labels)):
            raise ValueError(
                f"ids, x and labels differ in length: {len(self.ids)}, {len(self.x)}, "
                f"{len(self.labels)}"
            )

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, mask: np.ndarray) -> Examples:
        index = np.flatnonzero(mask)
        return Examples(
            tuple(self.ids[i] for i in index),
            self.x[index],
            tuple(self.labels[i] for i in index),
        )

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.labels).items()))

    @staticmethod
    def empty(shape: tuple[int, int, int]) -> Examples:
        return Examples((), np.zeros((0, *shape), np.float32), ())


def concat(parts: Sequence[Examples]) -> Examples:
    """Join example sets; a later part wins for an id present in several (labels beat the pool)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        raise ValueError("nothing to concatenate")
    position: dict[str, tuple[int, int]] = {}
    for p, part in enumerate(parts):
        for i, alert_id in enumerate(part.ids):
            position[alert_id] = (p, i)
    keep = sorted(position.values())
    return Examples(
        tuple(parts[p].ids[i] for p, i in keep),
        np.stack([parts[p].x[i] for p, i in keep]).astype(np.float32, copy=False),
        tuple(parts[p].labels[i] for p, i in keep),
    )


def id_fraction(alert_id: str) -> float:
    """A stable pseudo-random number in [0, 1) for an id (the same in every process).

    >>> id_fraction("ZTF21aaaaaaa") == id_fraction("ZTF21aaaaaaa")
    True
    >>> 0.0 <= id_fraction("x") < 1.0
    True
    """
    digest = hashlib.blake2b(alert_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def holdout_mask(
    ids: Sequence[str], labels: Sequence[str], fraction: float, min_class: int
) -> np.ndarray:
    """Bool mask of the held-out examples (see the module docstring).

    >>> ids = [f"a{i}" for i in range(200)]
    >>> m = holdout_mask(ids, ["n"] * 197 + ["rare"] * 3, 0.2, 10)
    >>> bool(m[-3:].any()), 20 < int(m.sum()) < 60
    (False, True)
    """
    counts = Counter(labels)
    return np.array(
        [
            counts[label] >= min_class and id_fraction(alert_id) < fraction
            for alert_id, label in zip(ids, labels, strict=True)
        ],
        dtype=bool,
    )


@dataclass(frozen=True)
class Split:
    train: Examples
    holdout: Examples


def split(examples: Examples, fraction: float, min_class: int) -> Split:
    mask = holdout_mask(examples.ids, examples.labels, fraction, min_class)
    return Split(examples.take(~mask), examples.take(mask))
