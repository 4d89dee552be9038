"""R3: two users on one stream. User "sso" hunts the scenario's anomaly (and dismisses its
distractor); user "bogus" hunts the distractor. Each night each user is asked Q questions of
their own, never one they were asked before.

AHUNT runs **one** model for both: every answer of either user trains the same network (an
object answered by both is learnt once), and each user ranks by their own interest weights over
its classes, as the product's per-user interest does. A peer has no shared model to offer, so
each user gets their own forest (what a per-user AAD deployment runs). Held-out AUROC and the
found fraction are per user, each against that user's own hunted class.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.paper import metrics
from bench.paper.methods import METHODS, Ahunt
from bench.paper.protocol import Answer, Method, MethodContext
from bench.paper.runner import breakdown
from bench.paper.scenario import ScenarioConfig, Stream
from models.interest import Interest, answer, weight_vector
from models.questions import select_questions


@dataclass(frozen=True)
class User:
    name: str
    hunts: int
    dismisses: int | None

    def oracle(self, label: int) -> tuple[str, bool | None]:
        if label == self.hunts:
            return str(label), True
        if label == self.dismisses:
            return str(label), False
        return str(label), None


def users_of(sc: ScenarioConfig) -> tuple[User, User]:
    assert sc.distractor is not None, "R3 needs a second hunted class (the distractor role)"
    names = sc.class_names or tuple(str(c) for c in range(max(sc.anomaly, sc.distractor) + 1))
    return (
        User(names[sc.anomaly], sc.anomaly, sc.distractor),
        User(names[sc.distractor], sc.distractor, None),
    )


class SharedAhunt(Ahunt):
    """One AHUNT model, one interest per user."""

    def __init__(self, ctx: MethodContext, users: Sequence[User]) -> None:
        super().__init__(ctx)
        self.interests = {u.name: Interest(reserve_share=ctx.reserve_share) for u in users}
        self._learnt: set[int] = set()

    def weights_for(self, user: str) -> np.ndarray:
        return weight_vector(self.interests[user], self.learner.classes)

    def class_scores(self, x: np.ndarray) -> np.ndarray:
        return self._class_scores(x)

    def ask_for(
        self, user: str, ids: np.ndarray, scores: np.ndarray, asked: set[int], q: int
    ) -> list[int]:
        questions = select_questions(
            ids,
            scores,
            self.learner.classes,
            self.weights_for(user),
            q,
            self.ctx.strategy,
            exclude=asked,
            rng=self.rng,
        )
        return [int(qu.object_id) for qu in questions]  # type: ignore[call-overload]

    def learn_all(self, x: np.ndarray, answers: Sequence[tuple[str, Answer]]) -> None:
        new = []
        for i, (user, a) in enumerate(answers):
            self.interests[user] = answer(self.interests[user], a.label, a.interesting)
            if a.object_id not in self._learnt:
                self._learnt.add(a.object_id)
                new.append(i)
        self.train.add(x[new], [answers[i][1].label for i in new])
        self.learner.fit(self.train.x, self.train.labels)
        self.learner.fit_detector(self.train.x)


def _night_entry(
    night: int, scores: np.ndarray, is_target: np.ndarray, hits: int, asked: int, found: int
) -> dict[str, float]:
    r = metrics.r_precision(scores, is_target)
    return {
        "night": night,
        "rws": metrics.rws(scores, is_target),
        "r_precision": r,
        "mcc": metrics.mcc_from_r_precision(r, int(is_target.sum()), len(is_target)),
        "true_candidates_pct": 100.0 * hits / max(asked, 1),
        "found_fraction": found / max(int(is_target.sum()), 1),
    }


def run_two_users(
    name: str, sc: ScenarioConfig, ctx: MethodContext, stream: Stream
) -> dict[str, list[dict[str, float]]]:
    """One method, one seed: per-night metrics per user, keyed ``method@user``."""
    users = users_of(sc)
    boot_labels = [str(y) for y in stream.boot_y]
    shared: SharedAhunt | None = None
    own: dict[str, Method] = {}
    if name == "ahunt":
        shared = SharedAhunt(ctx, users)
        shared.start(stream.boot_x, boot_labels)
    else:
        for u in users:
            own[u.name] = METHODS[name](ctx)
            own[u.name].start(stream.boot_x, boot_labels)
    asked: dict[str, set[int]] = {u.name: set() for u in users}
    asked_labels: dict[str, list[int]] = {u.name: [] for u in users}
    found = dict.fromkeys(asked, 0)
    out: dict[str, list[dict[str, float]]] = {f"{name}@{u.name}": [] for u in users}
    for night in range(1, sc.nights + 1):
        t0 = time.perf_counter()
        in_pool = np.flatnonzero(stream.night_of <= night)
        pool_x, pool_y = stream.pool_x[in_pool], stream.pool_y[in_pool]
        class_scores = shared.class_scores(pool_x) if shared is not None else None
        tonight: list[tuple[str, Answer]] = []
        entries = {}
        for u in users:
            if shared is not None:
                assert class_scores is not None
                scores = class_scores @ shared.weights_for(u.name)
                chosen = shared.ask_for(u.name, in_pool, class_scores, asked[u.name], sc.questions)
            else:
                scores = own[u.name].rank(pool_x)
                chosen = own[u.name].ask(in_pool, asked[u.name], sc.questions)
            if len(set(chosen)) != len(chosen) or asked[u.name] & set(chosen):
                raise AssertionError(f"{name} asked {u.name} an object twice")
            asked[u.name].update(chosen)
            asked_labels[u.name] += [int(stream.pool_y[i]) for i in chosen]
            answers = [Answer(i, *u.oracle(int(stream.pool_y[i]))) for i in chosen]
            hits = sum(1 for a in answers if a.interesting)
            found[u.name] += hits
            tonight += [(u.name, a) for a in answers]
            if shared is None:
                own[u.name].learn(stream.pool_x[chosen], answers)
            entries[u.name] = _night_entry(
                night, scores, pool_y == u.hunts, hits, len(chosen), found[u.name]
            )
        if shared is not None:
            ids = [a.object_id for _, a in tonight]
            shared.learn_all(stream.pool_x[ids], tonight)
        seconds = time.perf_counter() - t0
        for u in users:
            if shared is not None:
                test_scores = shared.class_scores(stream.test_x) @ shared.weights_for(u.name)
            else:
                test_scores = own[u.name].score(stream.test_x)
            is_target = stream.test_y == u.hunts
            entries[u.name]["test_auroc"] = metrics.auroc(test_scores, is_target)
            entries[u.name]["test_ap"] = metrics.average_precision(test_scores, is_target)
            entries[u.name]["seconds"] = seconds / len(users)
            if night == sc.nights:
                entries[u.name].update(
                    breakdown(sc, test_scores, stream.test_y, u.hunts, asked_labels[u.name])
                )
            out[f"{name}@{u.name}"].append(entries[u.name])
    return out
