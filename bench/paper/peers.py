"""Active anomaly discovery peers from `coniferest` (what Fink's per-user models run).

* ``aad-raw``: :class:`coniferest.aadforest.AADForest` (Das et al. 2017: an isolation forest whose
  leaf weights are re-fitted from the Oracle's answers) on the pixels;
* ``aad-static``: the same on the latent of a CNN trained once on the bootstrap (frozen);
* ``pine-raw``: :class:`coniferest.pineforest.PineForest` (grows spare trees and keeps those that
  isolate the known anomalies best) on the pixels;
* ``aad-raw-boot``: ``aad-raw`` that also gets the labelled bootstrap, as data to build the trees
  on and as known regular objects, i.e. the same labels AHUNT starts from. Not in the issue's
  list, but measurably the strongest peer (docs/BENCHMARKS.md), so AHUNT is compared with it too.

They follow the protocol like every other method: each night the forest is rebuilt on the current
pool (seeded) and fitted with every answer so far as a label (an interesting object is an anomaly
``-1``; normal and "not interesting" answers are regular ``1``), the Q best-ranked objects never
asked before are shown to the Oracle, and after the answers the weights (AAD) or the kept trees
(PineForest) are re-fitted so the held-out split is scored by the updated model. coniferest scores
are "lower = more anomalous"; here they are negated so that higher = more interesting.

coniferest is an optional dependency (the ``bench`` extra); it is imported on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from bench.paper.protocol import Answer, LabelledSet, MethodContext, top_unasked
from models.learner import AhuntLearner

Model = Literal["aad", "pine"]
Features = Literal["raw", "static"]

ANOMALY, REGULAR = -1, 1  # coniferest.label.Label values
N_TREES = 100


def _label(a: Answer) -> int:
    return ANOMALY if a.interesting else REGULAR


class ConiferestPeer:
    """An active forest from coniferest on pixels or on the frozen bootstrap latent."""

    def __init__(
        self, ctx: MethodContext, model: Model, features: Features, use_bootstrap: bool = False
    ) -> None:
        self.ctx = ctx
        self.model_kind = model
        self.features = features
        self.use_bootstrap = use_bootstrap
        self._boot_feats: np.ndarray | None = None
        self.learner: AhuntLearner | None = None
        self.forest: Any = None
        self.known_x: list[np.ndarray] = []
        self.known_y: list[int] = []
        self._pool_feats: np.ndarray | None = None
        self._pool_scores: np.ndarray | None = None
        self._fits = 0

    def start(self, boot_x: np.ndarray, boot_labels: Sequence[str]) -> None:
        if self.features == "static":
            self.learner = AhuntLearner(
                self.ctx.spec, sorted(set(boot_labels)), self.ctx.learner_config, self.ctx.seed
            )
            self.learner.fit(boot_x, boot_labels)
            self.train = LabelledSet(boot_x, boot_labels)
        if self.use_bootstrap:
            self._boot_feats = self._features(boot_x)
            self.known_x.append(self._boot_feats)
            self.known_y.extend([REGULAR] * len(boot_x))

    def _features(self, x: np.ndarray) -> np.ndarray:
        if self.learner is None:
            return np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float64)
        return np.ascontiguousarray(self.learner.embed(x), dtype=np.float64)

    def _new_forest(self) -> Any:
        # A fresh, seeded forest per fit: the pool grows every night, so the trees must be
        # rebuilt on it (coniferest builds trees once per model object).
        seed = self.ctx.seed * 100_003 + self._fits
        self._fits += 1
        if self.model_kind == "aad":
            from coniferest.aadforest import AADForest

            return AADForest(n_trees=N_TREES, n_jobs=1, random_seed=seed)
        from coniferest.pineforest import PineForest

        return PineForest(n_trees=N_TREES, n_jobs=1, random_seed=seed)

    def _fit(self, pool_feats: np.ndarray) -> None:
        import warnings

        if self._boot_feats is not None:
            pool_feats = np.concatenate([self._boot_feats, pool_feats])
        forest = self._new_forest()
        with warnings.catch_warnings():
            # A pool smaller than the 256-object subsample on the first nights is expected.
            warnings.filterwarnings("ignore", message="population should be greater")
            if self.known_y:
                forest.fit_known(pool_feats, np.concatenate(self.known_x), np.asarray(self.known_y))
            else:
                forest.fit_known(pool_feats)
        self.forest = forest

    def _interest(self, feats: np.ndarray) -> np.ndarray:
        assert self.forest is not None
        return -np.asarray(self.forest.score_samples(feats), dtype=np.float64)

    def rank(self, pool_x: np.ndarray) -> np.ndarray:
        # Features are fixed (pixels or a frozen encoder): the known prefix is reused.
        cached = self._pool_feats
        if cached is None or len(cached) > len(pool_x):
            cached = self._features(pool_x)
        elif len(cached) < len(pool_x):
            cached = np.concatenate([cached, self._features(pool_x[len(cached) :])])
        self._pool_feats = cached
        self._fit(cached)
        self._pool_scores = self._interest(cached)
        return self._pool_scores

    def ask(self, ids: np.ndarray, asked: set[int], q: int) -> list[int]:
        assert self._pool_scores is not None, "rank() first"
        return top_unasked(ids, self._pool_scores, asked, q)

    def learn(self, x: np.ndarray, answers: Sequence[Answer]) -> None:
        if not answers:
            return
        self.known_x.append(self._features(x))
        self.known_y.extend(_label(a) for a in answers)
        assert self._pool_feats is not None
        self._fit(self._pool_feats)

    def score(self, x: np.ndarray) -> np.ndarray:
        return self._interest(self._features(x))
