"""The paper's protocol as data: which classes play which role, and the stream of nights.

One seed draws a held-out test split (never shown to the Oracle), a labelled bootstrap set of the
normal classes, and a stream of nights whose objects join a cumulative pool. Every method sees the
same stream for the same seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bench.paper.datasets import add_noise, load_dataset


@dataclass(frozen=True)
class ScenarioConfig:
    dataset: str = "digits"
    normals: tuple[int, ...] = (0, 1, 2, 3)
    anomaly: int = 5
    distractor: int | None = None
    pre: tuple[int, ...] = (20,)  # bootstrap examples per normal class (one value, or one each)
    per_night: tuple[int, ...] = (5,)  # normal examples per class per night (same convention)
    anomalies_per_night: int = 2
    distractors_per_night: int = 2
    nights: int = 15
    questions: int = 3
    noise: float = 0.1
    test_fraction: float = 0.3
    test_max_per_class: int = 400
    # Real alerts (dataset "ztf-real", bench/paper/real_stream.py): the packets, the labels file,
    # the classes by name (the int roles above index this tuple), the central crop (0: none),
    # and "two_users" for R3 (one user hunts the anomaly, one the distractor).
    alerts: str | None = None
    labels: str | None = None
    class_names: tuple[str, ...] = ()
    crop: int = 0
    two_users: bool = False

    def __post_init__(self) -> None:
        roles = [*self.normals, self.anomaly] + (
            [self.distractor] if self.distractor is not None else []
        )
        if len(set(roles)) != len(roles):
            raise ValueError(f"normals, anomaly and distractor must be distinct classes: {roles}")
        for name in ("pre", "per_night"):
            value = getattr(self, name)
            if len(value) not in (1, len(self.normals)):
                raise ValueError(
                    f"--{name.replace('_', '-')} takes one number or one per normal class"
                )
        if self.nights < 1 or self.questions < 1:
            raise ValueError("need at least one night and one question")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError("test_fraction must be in (0, 1)")

    def per_class(self, values: tuple[int, ...]) -> dict[int, int]:
        return {c: values[0] if len(values) == 1 else values[i] for i, c in enumerate(self.normals)}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Stream:
    """Arrays for one seed. ``night_of[i]`` is the night (1-based) pool object i arrives."""

    boot_x: np.ndarray
    boot_y: np.ndarray
    pool_x: np.ndarray
    pool_y: np.ndarray
    night_of: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    # Real alerts only: the object of each bootstrap, pool and test item (the split's unit).
    objects: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def _take(indices: list[int], n: int, what: str) -> list[int]:
    if len(indices) < n:
        raise ValueError(
            f"not enough {what}: need {n}, only {len(indices)} left in the train split"
        )
    taken = indices[:n]
    del indices[:n]
    return taken


def build_stream(config: ScenarioConfig, seed: int) -> Stream:
    """Split, draw and add noise deterministically for ``seed``."""
    if config.dataset == "ztf-real":
        from bench.paper.real_stream import build_real_stream

        return build_real_stream(config, seed)
    x_all, y_all = load_dataset(config.dataset)  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    classes = [*config.normals, config.anomaly]
    if config.distractor is not None:
        classes.append(config.distractor)
    train: dict[int, list[int]] = {}
    test: list[int] = []
    for c in classes:
        idx = rng.permutation(np.flatnonzero(y_all == c))
        n_test = min(int(round(len(idx) * config.test_fraction)), config.test_max_per_class)
        test.extend(idx[:n_test].tolist())
        train[c] = idx[n_test:].tolist()

    boot: list[int] = []
    for c, n in config.per_class(config.pre).items():
        boot += _take(train[c], n, f"class {c} for the bootstrap")
    pool: list[int] = []
    night_of: list[int] = []
    nightly = config.per_class(config.per_night)
    for night in range(1, config.nights + 1):
        tonight: list[int] = []
        for c, n in nightly.items():
            tonight += _take(train[c], n, f"class {c} normals")
        tonight += _take(train[config.anomaly], config.anomalies_per_night, "anomalies")
        if config.distractor is not None:
            tonight += _take(train[config.distractor], config.distractors_per_night, "distractors")
        pool += tonight
        night_of += [night] * len(tonight)

    def noisy(idx: list[int]) -> np.ndarray:
        return add_noise(x_all[np.asarray(idx, dtype=np.int64)], config.noise, rng)

    return Stream(
        boot_x=noisy(boot),
        boot_y=y_all[boot],
        pool_x=noisy(pool),
        pool_y=y_all[pool],
        night_of=np.asarray(night_of),
        test_x=noisy(test),
        test_y=y_all[test],
    )
