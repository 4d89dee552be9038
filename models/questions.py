"""AHUNT's question step: which objects to show the Oracle (the user) this round.

The budget ``q`` is split over the interest classes by weight (at least one question each while
the budget allows), and each class's share over the strategies of a :class:`StrategyMix`. Every
(class, strategy) pair walks its own ranking and skips objects already asked, in earlier rounds
(``exclude``) or earlier in this round by another class, so an object is never asked twice. Ties
are broken by object id, so the same inputs always give the same questions.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Strategy = Literal["top", "uncertain", "random"]
STRATEGIES: tuple[Strategy, ...] = ("top", "uncertain", "random")


@dataclass(frozen=True)
class StrategyMix:
    """Ratios of question strategies, e.g. ``{"top": 0.8, "random": 0.2}``.

    ``top`` asks the highest scores, ``uncertain`` the scores closest to 0.5 (where one answer
    teaches the model most), ``random`` a uniform draw (unbiased exploration).
    """

    ratios: Mapping[Strategy, float] = field(default_factory=lambda: {"top": 1.0})

    def __post_init__(self) -> None:
        if not self.ratios or any(s not in STRATEGIES for s in self.ratios):
            raise ValueError(f"strategies must be among {STRATEGIES}, got {list(self.ratios)}")
        if any(not np.isfinite(r) or r < 0 for r in self.ratios.values()):
            raise ValueError("strategy ratios must be finite and >= 0")
        if sum(self.ratios.values()) <= 0:
            raise ValueError("at least one strategy ratio must be positive")

    @classmethod
    def parse(cls, text: str) -> StrategyMix:
        """Parse ``"top"`` or ``"top:0.8,random:0.2"``.

        >>> StrategyMix.parse("top:0.8,random:0.2").ratios
        {'top': 0.8, 'random': 0.2}
        """
        ratios: dict[Strategy, float] = {}
        for part in text.split(","):
            name, _, ratio = part.strip().partition(":")
            if name not in STRATEGIES:
                raise ValueError(f"unknown strategy {name!r}; choose from {STRATEGIES}")
            ratios[name] = float(ratio) if ratio else 1.0
        return cls(ratios)

    def __str__(self) -> str:
        return ",".join(f"{s}:{r:g}" for s, r in self.ratios.items())


@dataclass(frozen=True)
class Question:
    object_id: Hashable
    target: str  # the interest class whose ranking chose it
    strategy: Strategy
    score: float  # that class's score for the object

    @property
    def reason(self) -> str:
        return f"{self.strategy}:{self.target}"


def split_budget(total: int, weights: Sequence[float], at_least_one: bool = True) -> list[int]:
    """Split ``total`` items over ``weights`` by largest remainder; ties go to the earlier entry.

    With ``at_least_one`` every positive weight gets one item first while the budget allows
    (highest weights first).

    >>> split_budget(5, [0.8, 0.2])
    [4, 1]
    >>> split_budget(2, [0.5, 0.3, 0.2])
    [1, 1, 0]
    >>> split_budget(3, [1.0, 0.0])
    [3, 0]
    """
    w = np.asarray(weights, dtype=np.float64)
    if total < 0 or (w < 0).any():
        raise ValueError("budget and weights must be >= 0")
    out = np.zeros(len(w), dtype=np.int64)
    if total == 0 or not (w > 0).any():
        return out.tolist()
    share = w / w.sum() * total
    out = np.floor(share).astype(np.int64)
    remainder = total - int(out.sum())
    out[np.argsort(-(share - out), kind="stable")[:remainder]] += 1
    if at_least_one:
        # Give each starved positive weight (highest first) one item from the largest allocation.
        for i in np.argsort(-w, kind="stable"):
            if w[i] <= 0 or out[i] > 0:
                continue
            donor = int(np.argmax(np.where(out > 1, out, -1)))
            if out[donor] <= 1:
                break
            out[donor] -= 1
            out[i] += 1
    return out.tolist()


def _ranking(
    scores: np.ndarray, ids: np.ndarray, strategy: Strategy, rng: np.random.Generator
) -> np.ndarray:
    """Candidate positions in the order the strategy asks them; ties broken by object id."""
    if strategy == "random":
        return rng.permutation(len(scores))
    key = -scores if strategy == "top" else np.abs(scores - 0.5)
    # lexsort sorts by the last key first: primary key, then id for ties.
    return np.lexsort((ids, key))


def select_questions(
    ids: Sequence[Hashable] | np.ndarray,
    class_scores: np.ndarray,
    classes: Sequence[str],
    weights: np.ndarray,
    budget: int,
    mix: StrategyMix | None = None,
    exclude: Collection[Hashable] = frozenset(),
    rng: np.random.Generator | None = None,
) -> list[Question]:
    """Choose up to ``budget`` distinct objects to ask about.

    ``class_scores`` is (N, K+1) aligned with ``classes`` (usually the class probabilities, with
    the reserve column possibly mixed with novelty); ``weights`` the user's normalised weight
    vector over the same classes (:func:`models.interest.weight_vector`). Objects in ``exclude``
    were asked before and are never asked again. Fewer questions come back only when the
    candidates run out.
    """
    mix = mix or StrategyMix()
    rng = rng or np.random.default_rng(0)
    id_array = np.asarray(ids)
    scores = np.asarray(class_scores, dtype=np.float64)
    if scores.shape != (len(id_array), len(classes)) or len(weights) != len(classes):
        raise ValueError(
            f"class_scores {scores.shape} must be (len(ids)={len(id_array)}, len(classes)="
            f"{len(classes)}) and weights must have {len(classes)} entries"
        )
    per_class = split_budget(budget, list(weights))
    strategy_names = list(mix.ratios)
    strategy_ratios = [mix.ratios[s] for s in strategy_names]
    taken: set[Hashable] = set(exclude)
    chosen: list[Question] = []
    # Highest-weight classes choose first, so the user's main interest gets its best candidates.
    for c in np.argsort(-np.asarray(weights), kind="stable"):
        if per_class[c] == 0:
            continue
        for strategy, n in zip(
            strategy_names,
            split_budget(per_class[c], strategy_ratios, at_least_one=False),
            strict=True,
        ):
            if n == 0:
                continue
            picked = 0
            for pos in _ranking(scores[:, c], id_array, strategy, rng):
                key = id_array[pos].item() if hasattr(id_array[pos], "item") else id_array[pos]
                if key in taken:
                    continue
                taken.add(key)
                chosen.append(Question(key, classes[c], strategy, float(scores[pos, c])))
                picked += 1
                if picked == n:
                    break
    # Candidates may run out for a class while others still have some; top up from the
    # overall weighted score so the budget is used whenever any unasked object remains.
    missing = budget - len(chosen)
    if missing > 0:
        overall = scores @ np.asarray(weights, dtype=np.float64)
        for pos in _ranking(overall, id_array, "top", rng):
            key = id_array[pos].item() if hasattr(id_array[pos], "item") else id_array[pos]
            if key in taken:
                continue
            taken.add(key)
            chosen.append(Question(key, "overall", "top", float(overall[pos])))
            missing -= 1
            if missing == 0:
                break
    return chosen
