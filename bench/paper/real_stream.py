"""The paper's stream on real alerts, split by object.

Every object (ZTF ``objectId``) lands wholly in the held-out test split or wholly in the train
side, so no object's other detections can leak its label into the test. Objects are split per
class (the class of most of their alerts), so each split keeps the classes' shares. The train
side then feeds the bootstrap and the nights exactly as in ``scenario.build_stream``.

The archive decides how many alerts of each class there are, so the draws are fitted to it
(:func:`plan`): a night takes at most what the scenario asks and at most what the train side
can give for every night; a class too small for even one a night is a clear error.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from bench.paper.real_alerts import REAL_PREPROCESSING, RealAlerts, load_real_alerts
from bench.paper.scenario import ScenarioConfig, Stream

# Planned draws leave this share of a class's expected train alerts unused: the object split
# moves whole objects, so a seed's train side can be a little smaller than the average.
_SPLIT_MARGIN = 0.9


@dataclass(frozen=True)
class Plan:
    """Draws per class: bootstrap (normals), per night (every role)."""

    pre: dict[int, int]
    per_night: dict[int, int]

    def to_dict(self, names: tuple[str, ...]) -> dict[str, dict[str, int]]:
        return {
            "pre": {names[c]: n for c, n in self.pre.items()},
            "per_night": {names[c]: n for c, n in self.per_night.items()},
        }


def data_for(config: ScenarioConfig) -> RealAlerts:
    if config.alerts is None or config.labels is None:
        raise ValueError("dataset ztf-real needs the alerts folder and the labels file")
    return load_real_alerts(config.alerts, config.labels, config.crop, REAL_PREPROCESSING)


def codes(data: RealAlerts, config: ScenarioConfig) -> np.ndarray:
    """Each alert's role class as an index of ``config.class_names``; -1 for other classes."""
    index = {name: i for i, name in enumerate(config.class_names)}
    return np.asarray([index.get(name, -1) for name in data.labels.tolist()], dtype=np.int64)


def roles(config: ScenarioConfig) -> list[int]:
    out = [*config.normals, config.anomaly]
    return out + ([config.distractor] if config.distractor is not None else [])


def plan(config: ScenarioConfig, y: np.ndarray) -> Plan:
    """The scenario's draws, fitted to the classes' sizes (see the module docstring)."""
    names = config.class_names
    train = {
        c: int(np.sum(y == c) * (1.0 - config.test_fraction) * _SPLIT_MARGIN) for c in roles(config)
    }
    pre_asked, night_asked = config.per_class(config.pre), config.per_class(config.per_night)
    pre: dict[int, int] = {}
    per_night: dict[int, int] = {}
    for c in config.normals:
        pre[c] = min(pre_asked[c], train[c] // 3)
        per_night[c] = min(night_asked[c], (train[c] - pre[c]) // config.nights)
    per_night[config.anomaly] = min(
        config.anomalies_per_night, train[config.anomaly] // config.nights
    )
    if config.distractor is not None:
        per_night[config.distractor] = min(
            config.distractors_per_night, train[config.distractor] // config.nights
        )
    for c, n in per_night.items():
        if n < 1 or pre.get(c, 1) < 1:
            raise ValueError(
                f"not enough {names[c]} alerts ({int(np.sum(y == c))}) for {config.nights} "
                "nights: lower --nights or add alerts"
            )
    return Plan(pre, per_night)


def split_objects(
    objects: np.ndarray, y: np.ndarray, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """A bool mask of the alerts whose object is held out: ``fraction`` of each class's objects
    (an object's class is that of most of its alerts, ties to the lowest code)."""
    by_object: dict[str, Counter[int]] = defaultdict(Counter)
    for obj, c in zip(objects.tolist(), y.tolist(), strict=True):
        by_object[obj][c] += 1
    per_class: dict[int, list[str]] = defaultdict(list)
    for obj in sorted(by_object):
        counts = by_object[obj]
        top = max(counts.values())
        per_class[min(c for c, n in counts.items() if n == top)].append(obj)
    held: set[str] = set()
    for c in sorted(per_class):
        objs = per_class[c]
        order = rng.permutation(len(objs))
        held.update(objs[i] for i in order[: int(round(len(objs) * fraction))])
    return np.asarray([obj in held for obj in objects.tolist()], dtype=bool)


def build_real_stream(config: ScenarioConfig, seed: int) -> Stream:
    """Test split by object, then bootstrap and nights from the train side, for ``seed``."""
    data = data_for(config)
    y_all = codes(data, config)
    in_roles = np.isin(y_all, roles(config))
    draws = plan(config, y_all)
    rng = np.random.default_rng(seed)
    held = split_objects(data.objects[in_roles], y_all[in_roles], config.test_fraction, rng)
    idx_roles = np.flatnonzero(in_roles)
    test = idx_roles[held]
    train: dict[int, list[int]] = {}
    for c in roles(config):
        side = idx_roles[~held & (y_all[idx_roles] == c)]
        train[c] = rng.permutation(side).tolist()

    def take(c: int, n: int) -> list[int]:
        if len(train[c]) < n:
            raise ValueError(
                f"not enough {config.class_names[c]} alerts on the train side for seed {seed}: "
                "lower --nights or add alerts"
            )
        out = train[c][:n]
        del train[c][:n]
        return out

    boot = [i for c, n in draws.pre.items() for i in take(c, n)]
    pool: list[int] = []
    night_of: list[int] = []
    for night in range(1, config.nights + 1):
        tonight = [i for c, n in draws.per_night.items() for i in take(c, n)]
        pool += tonight
        night_of += [night] * len(tonight)
    x = data.x
    return Stream(
        boot_x=x[boot],
        boot_y=y_all[boot],
        pool_x=x[pool],
        pool_y=y_all[pool],
        night_of=np.asarray(night_of),
        test_x=x[test],
        test_y=y_all[test],
        objects=(data.objects[boot], data.objects[pool], data.objects[test]),
    )
