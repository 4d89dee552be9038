"""Smoke of the active anomaly discovery peers (coniferest): they follow the protocol and give
finite metrics. One seed, few nights, a tiny CNN for the static latent."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from bench.paper.methods import METHODS, PAPER_METHODS, PEER_METHODS, Answer, MethodContext
from bench.paper.runner import RunConfig, run_method
from bench.paper.scenario import ScenarioConfig, build_stream
from models.learner import LearnerConfig
from models.preprocess import InputSpec
from models.questions import StrategyMix

pytest.importorskip("coniferest")

PEERS = PEER_METHODS
FAST = LearnerConfig(augment="shift", pretrain_epochs=2, min_epoch_samples=128)


@pytest.mark.parametrize("name", PEERS)
def test_peer_runs_the_protocol_with_finite_metrics(name: str) -> None:
    scenario = ScenarioConfig(nights=4, questions=3)
    config = RunConfig(scenario, (name,), (0,), FAST, StrategyMix.parse("top"))
    nights = run_method(name, config, seed=0)  # raises if the peer re-asks an object
    assert len(nights) == 4
    for night in nights:
        assert all(math.isfinite(v) for v in night.values())
    assert 0.0 <= nights[-1]["found_fraction"] <= 1.0
    assert 0.0 <= nights[-1]["test_auroc"] <= 1.0


def test_peers_are_optional_methods() -> None:
    assert set(PEERS) <= set(METHODS)
    assert not set(PEERS) & set(PAPER_METHODS)


def test_aad_feedback_raises_objects_the_oracle_calls_anomalies() -> None:
    """Objects the forest ranked as ordinary move up once the Oracle calls them anomalies."""
    stream = build_stream(ScenarioConfig(nights=3), 2)
    ctx = MethodContext(
        InputSpec(*stream.boot_x.shape[1:]), FAST, StrategyMix.parse("top"), 0.5, 0.2, 2
    )
    peer = METHODS["aad-raw"](ctx)
    peer.start(stream.boot_x, [str(y) for y in stream.boot_y])
    ids = np.arange(len(stream.pool_x))
    scores = peer.rank(stream.pool_x)
    chosen = peer.ask(ids, set(), 3)
    assert len(set(chosen)) == 3 and set(peer.ask(ids, set(chosen), 3)).isdisjoint(chosen)

    def percentile(s: np.ndarray, idx: np.ndarray) -> float:
        return float(np.mean([np.mean(s < s[i]) for i in idx]))

    ordinary = np.argsort(scores)[:3]  # the three least anomalous objects of the pool
    peer.learn(stream.pool_x[ordinary], [Answer(int(i), "5", True) for i in ordinary])
    after = peer.score(stream.pool_x)
    assert np.all(np.isfinite(after))
    assert percentile(after, ordinary) > percentile(scores, ordinary) + 0.3


def test_versus_table_compares_with_the_best_peer_per_metric() -> None:
    from bench.paper.report import versus

    def res(auroc: float, found: float) -> dict[str, Any]:
        stat = {"test_auroc": auroc, "found_fraction": found}
        return {"final": {k: {"mean": v, "std": 0.0} for k, v in stat.items()}}

    methods = {"ahunt": res(0.99, 0.8), "aad-raw": res(0.98, 0.85), "pine-raw": res(0.7, 0.2)}
    row = versus([("x", {"methods": methods})]).splitlines()[-1]
    assert "(aad-raw)" in row and row.endswith("| no |")  # found below aad-raw's
    methods["aad-raw"] = res(0.98, 0.8)
    assert versus([("x", {"methods": methods})]).endswith("| yes |")
    assert len(versus([("y", {"methods": {"ahunt": res(0.9, 0.5)}})]).splitlines()) == 2


def test_ablation_rows_show_the_settings() -> None:
    from bench.paper.report import ablation

    stat = {"mean": 0.5, "std": 0.0}
    final = {k: stat for k in ("test_auroc", "test_ap", "found_fraction", "rws")}
    config = {
        "strategy": "top:1",
        "novelty_mix": 0.5,
        "learner": {"loss": "ce", "min_epoch_samples": 512},  # an older file: no smoothing key
    }
    methods = {"ahunt": {"final": final, "seconds_per_seed": stat}}
    row = ablation([("old", {"config": config, "methods": methods})]).splitlines()[-1]
    assert "min epoch samples 512, label smoothing 0.0" in row and row.startswith("| old |")
