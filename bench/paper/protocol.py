"""What every method of the paper benchmark shares: the protocol's interface and its types.

Each night the protocol calls ``rank(pool_x)`` (scores, higher = more interesting), then
``ask(ids, asked, q)`` (which objects to show the Oracle, never one in ``asked``), then ``learn``
with the Oracle's answers, then ``score(test_x)`` for the held-out metrics. The methods live in
``methods.py`` (AHUNT, isolation forests) and ``peers.py`` (coniferest's active forests); both
import this module only, not each other's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from models.learner import LearnerConfig
from models.preprocess import InputSpec
from models.questions import StrategyMix


@dataclass(frozen=True)
class Answer:
    object_id: int
    label: str
    interesting: bool | None


@dataclass(frozen=True)
class MethodContext:
    spec: InputSpec
    learner_config: LearnerConfig
    strategy: StrategyMix
    novelty_mix: float
    reserve_share: float
    seed: int
    # Score every stamp in its 8 D4 orientations and average (sky stamps have no orientation).
    tta: bool = False


class Method(Protocol):
    def start(self, boot_x: np.ndarray, boot_labels: Sequence[str]) -> None: ...
    def rank(self, pool_x: np.ndarray) -> np.ndarray: ...
    def ask(self, ids: np.ndarray, asked: set[int], q: int) -> list[int]: ...
    def learn(self, x: np.ndarray, answers: Sequence[Answer]) -> None: ...
    def score(self, x: np.ndarray) -> np.ndarray: ...


def top_unasked(ids: np.ndarray, scores: np.ndarray, asked: set[int], q: int) -> list[int]:
    order = np.lexsort((ids, -scores))  # highest score first, ties by id
    return [int(ids[i]) for i in order if int(ids[i]) not in asked][:q]


class LabelledSet:
    """Bootstrap plus every answered object: what the CNN methods train on."""

    def __init__(self, x: np.ndarray, labels: Sequence[str]) -> None:
        self.x = x
        self.labels = list(labels)

    def add(self, x: np.ndarray, labels: Sequence[str]) -> None:
        self.x = np.concatenate([self.x, x])
        self.labels += list(labels)
