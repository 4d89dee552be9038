"""The methods compared by the paper benchmark (AHUNT and isolation forests) and the registry of
every method by name, peers included; the interface they share is ``protocol.py``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.ensemble import IsolationForest

from bench.paper.protocol import Answer, LabelledSet, Method, MethodContext, top_unasked
from models.interest import Interest, answer, exploration_scores, weight_vector
from models.learner import AhuntLearner
from models.questions import select_questions


def d4_views(x: np.ndarray) -> list[np.ndarray]:
    """The 8 rotations and flips of square (N, C, H, W) stamps, as contiguous arrays.

    >>> [v[0, 0].tolist() for v in d4_views(np.arange(4.0).reshape(1, 1, 2, 2))][:2]
    [[[0.0, 1.0], [2.0, 3.0]], [[1.0, 3.0], [0.0, 2.0]]]
    """
    views = []
    for e in range(8):
        y = x[..., ::-1] if e >= 4 else x
        views.append(np.ascontiguousarray(np.rot90(y, e % 4, axes=(2, 3))))
    return views


class Ahunt:
    """AHUNT: the reserve-head CNN picks the questions and learns from every answer."""

    def __init__(self, ctx: MethodContext) -> None:
        self.ctx = ctx
        self.learner = AhuntLearner(ctx.spec, ["placeholder"], ctx.learner_config, seed=ctx.seed)
        self.interest = Interest(reserve_share=ctx.reserve_share)
        self.rng = np.random.default_rng(ctx.seed)
        self._pool_scores: np.ndarray | None = None

    def start(self, boot_x: np.ndarray, boot_labels: Sequence[str]) -> None:
        classes = sorted(set(boot_labels))
        self.learner = AhuntLearner(self.ctx.spec, classes, self.ctx.learner_config, self.ctx.seed)
        self.train = LabelledSet(boot_x, boot_labels)
        self.learner.fit(boot_x, boot_labels)
        self.learner.fit_detector(self.train.x)

    def _class_scores(self, x: np.ndarray) -> np.ndarray:
        if not self.ctx.tta:
            pred = self.learner.predict(x)
            return exploration_scores(pred.probs, pred.novelty, self.ctx.novelty_mix)
        preds = [self.learner.predict(view) for view in d4_views(x)]
        probs = np.mean([p.probs for p in preds], axis=0)
        novelty = np.mean([p.novelty for p in preds], axis=0)
        return exploration_scores(probs, novelty, self.ctx.novelty_mix)

    def _weights(self) -> np.ndarray:
        return weight_vector(self.interest, self.learner.classes)

    def rank(self, pool_x: np.ndarray) -> np.ndarray:
        self._pool_scores = self._class_scores(pool_x)
        return self._pool_scores @ self._weights()

    def ask(self, ids: np.ndarray, asked: set[int], q: int) -> list[int]:
        assert self._pool_scores is not None, "rank() first"
        questions = select_questions(
            ids,
            self._pool_scores,
            self.learner.classes,
            self._weights(),
            q,
            self.ctx.strategy,
            exclude=asked,
            rng=self.rng,
        )
        return [int(qu.object_id) for qu in questions]  # type: ignore[call-overload]

    def learn(self, x: np.ndarray, answers: Sequence[Answer]) -> None:
        for a in answers:
            self.interest = answer(self.interest, a.label, a.interesting)
        self.train.add(x, [a.label for a in answers])
        self.learner.fit(self.train.x, self.train.labels)
        self.learner.fit_detector(self.train.x)

    def score(self, x: np.ndarray) -> np.ndarray:
        return self._class_scores(x) @ self._weights()


class AhuntNaive(Ahunt):
    """AHUNT with the naive reserve-only policy for boring outliers: a "not interesting" answer
    is dropped instead of becoming a known class with weight 0, so such objects keep a high
    p(reserve) and go on competing with real unknowns for the exploration budget (AHUNT.md,
    scenario D). Kept as a method so the benchmark shows the difference side by side."""

    def learn(self, x: np.ndarray, answers: Sequence[Answer]) -> None:
        keep = [i for i, a in enumerate(answers) if a.interesting is not False]
        super().learn(x[keep], [answers[i] for i in keep])


class ForestOnFeatures:
    """Isolation forest on some features; it picks the questions and never learns from them
    (only ``iforest-dynamic``'s features do)."""

    def __init__(self, ctx: MethodContext, features: str) -> None:
        self.ctx = ctx
        self.features = features  # "raw" | "static" | "dynamic"
        self.forest: IsolationForest | None = None
        self._pool_scores: np.ndarray | None = None
        self.learner: AhuntLearner | None = None
        self._feature_cache: np.ndarray | None = None

    def start(self, boot_x: np.ndarray, boot_labels: Sequence[str]) -> None:
        if self.features != "raw":
            self.learner = AhuntLearner(
                self.ctx.spec, sorted(set(boot_labels)), self.ctx.learner_config, self.ctx.seed
            )
            self.learner.fit(boot_x, boot_labels)
            self.train = LabelledSet(boot_x, boot_labels)

    def _features(self, x: np.ndarray) -> np.ndarray:
        if self.learner is None:
            return x.reshape(len(x), -1)
        return self.learner.embed(x)

    def _pool_features(self, pool_x: np.ndarray) -> np.ndarray:
        # The pool only grows at the end (night order), and features change only when the
        # encoder trains, so the features of the known prefix are reused.
        cached = self._feature_cache
        if cached is None or len(cached) > len(pool_x):
            cached = self._features(pool_x)
        elif len(cached) < len(pool_x):
            cached = np.concatenate([cached, self._features(pool_x[len(cached) :])])
        self._feature_cache = cached
        return cached

    def _fit_forest(self, pool_x: np.ndarray) -> np.ndarray:
        feats = self._pool_features(pool_x)
        self.forest = IsolationForest(n_estimators=100, random_state=self.ctx.seed).fit(feats)
        return -self.forest.score_samples(feats)

    def rank(self, pool_x: np.ndarray) -> np.ndarray:
        self._pool_x = pool_x
        self._pool_scores = self._fit_forest(pool_x)
        return self._pool_scores

    def ask(self, ids: np.ndarray, asked: set[int], q: int) -> list[int]:
        assert self._pool_scores is not None, "rank() first"
        return top_unasked(ids, self._pool_scores, asked, q)

    def learn(self, x: np.ndarray, answers: Sequence[Answer]) -> None:
        if self.features == "dynamic" and self.learner is not None:
            self.train.add(x, [a.label for a in answers])
            self.learner.fit(self.train.x, self.train.labels)
            self._feature_cache = None
            # The latent moved: refit the forest on the pool's new features so held-out scores
            # come from features and forest of the same model.
            self._fit_forest(self._pool_x)

    def score(self, x: np.ndarray) -> np.ndarray:
        assert self.forest is not None
        return -self.forest.score_samples(self._features(x))


def _peer(
    model: str, features: str, use_bootstrap: bool = False
) -> Callable[[MethodContext], Method]:
    """A coniferest peer (bench/paper/peers.py), imported on use: coniferest is optional (the
    one place this registry reaches into peers.py; peers.py imports protocol.py only)."""

    def make(ctx: MethodContext) -> Method:
        from bench.paper.peers import ConiferestPeer

        return ConiferestPeer(ctx, model, features, use_bootstrap)  # type: ignore[arg-type]

    return make


METHODS: dict[str, Callable[[MethodContext], Method]] = {
    "iforest-raw": lambda ctx: ForestOnFeatures(ctx, "raw"),
    "iforest-static": lambda ctx: ForestOnFeatures(ctx, "static"),
    "iforest-dynamic": lambda ctx: ForestOnFeatures(ctx, "dynamic"),
    "ahunt": Ahunt,
    "ahunt-naive": AhuntNaive,
    # Active anomaly discovery peers (issue 7), optional: --methods aad-raw,aad-static,...
    "aad-raw": _peer("aad", "raw"),
    "aad-static": _peer("aad", "static"),
    "pine-raw": _peer("pine", "raw"),
    "aad-raw-boot": _peer("aad", "raw", use_bootstrap=True),
}
PAPER_METHODS: tuple[str, ...] = ("iforest-raw", "iforest-static", "iforest-dynamic", "ahunt")
PEER_METHODS: tuple[str, ...] = ("aad-raw", "aad-static", "pine-raw", "aad-raw-boot")
