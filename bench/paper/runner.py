"""Runs the paper protocol: every method, every seed, night by night, under one "never re-ask" rule.

Per night and method: the pool (cumulative) is ranked, the pool metrics are computed on that
ranking (the one that chose tonight's questions), Q never-asked objects are shown to the Oracle,
the method learns from the answers, and the held-out test split is scored by the updated model.
Seeds run in parallel processes, each with one intra-op thread (see PLATFORM.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.paper import metrics
from bench.paper.methods import METHODS, Answer, MethodContext
from bench.paper.scenario import ScenarioConfig, Stream, build_stream
from models.learner import LearnerConfig
from models.preprocess import InputSpec
from models.questions import StrategyMix

METRICS = (
    "rws",
    "r_precision",
    "mcc",
    "true_candidates_pct",
    "found_fraction",
    "test_auroc",
    "test_ap",
)


@dataclass(frozen=True)
class RunConfig:
    scenario: ScenarioConfig
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    learner: LearnerConfig
    strategy: StrategyMix
    novelty_mix: float = 0.5
    reserve_share: float = 0.2
    tta: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.scenario.to_dict(),
            "methods": list(self.methods),
            "seeds": list(self.seeds),
            "strategy": str(self.strategy),
            "novelty_mix": self.novelty_mix,
            "reserve_share": self.reserve_share,
            "tta": self.tta,
            "learner": self.learner.to_dict(),
        }


def oracle(label: int, scenario: ScenarioConfig) -> tuple[str, bool | None]:
    """What the simulated user answers: the true class name, interesting only for the anomaly,
    explicitly not interesting for the distractor, no opinion on normal classes."""
    if label == scenario.anomaly:
        return str(label), True
    if scenario.distractor is not None and label == scenario.distractor:
        return str(label), False
    return str(label), None


def _context(config: RunConfig, stream: Stream, seed: int) -> MethodContext:
    spec = InputSpec(*stream.boot_x.shape[1:])
    return MethodContext(
        spec,
        config.learner,
        config.strategy,
        config.novelty_mix,
        config.reserve_share,
        seed,
        config.tta,
    )


def run_method(
    name: str, config: RunConfig, seed: int, stream: Stream | None = None
) -> list[dict[str, float]]:
    """One method, one seed: a list of per-night metric dicts."""
    import torch

    torch.set_num_threads(1)
    sc = config.scenario
    stream = stream or build_stream(sc, seed)
    method = METHODS[name](_context(config, stream, seed))
    method.start(stream.boot_x, [str(y) for y in stream.boot_y])
    asked: set[int] = set()
    asked_labels: list[int] = []
    found = 0
    test_anomaly = stream.test_y == sc.anomaly
    nights: list[dict[str, float]] = []
    for night in range(1, sc.nights + 1):
        in_pool = np.flatnonzero(stream.night_of <= night)
        pool_x, pool_y = stream.pool_x[in_pool], stream.pool_y[in_pool]
        is_anomaly = pool_y == sc.anomaly
        t0 = time.perf_counter()
        scores = method.rank(pool_x)
        chosen = method.ask(in_pool, asked, sc.questions)
        if len(set(chosen)) != len(chosen) or asked & set(chosen):
            raise AssertionError(f"{name} asked an object twice")  # the never re-ask rule
        asked.update(chosen)
        asked_labels += [int(stream.pool_y[i]) for i in chosen]
        answers = [Answer(i, *oracle(int(stream.pool_y[i]), sc)) for i in chosen]
        hits = sum(1 for a in answers if a.interesting)
        found += hits
        method.learn(stream.pool_x[chosen], answers)
        test_scores = method.score(stream.test_x)
        r = metrics.r_precision(scores, is_anomaly)
        nights.append(
            {
                "night": night,
                "rws": metrics.rws(scores, is_anomaly),
                "r_precision": r,
                "mcc": metrics.mcc_from_r_precision(r, int(is_anomaly.sum()), len(is_anomaly)),
                "true_candidates_pct": 100.0 * hits / max(len(chosen), 1),
                "found_fraction": found / max(int(is_anomaly.sum()), 1),
                "test_auroc": metrics.auroc(test_scores, test_anomaly),
                "test_ap": metrics.average_precision(test_scores, test_anomaly),
                "seconds": time.perf_counter() - t0,
            }
        )
    nights[-1].update(breakdown(sc, test_scores, stream.test_y, sc.anomaly, asked_labels))
    return nights


def class_name(sc: ScenarioConfig, c: int) -> str:
    return sc.class_names[c] if sc.class_names else str(c)


def breakdown(
    sc: ScenarioConfig, test_scores: np.ndarray, test_y: np.ndarray, target: int, asked: list[int]
) -> dict[str, float]:
    """Where a method stands by the last night, class by class: the held-out AUROC of the hunted
    class against each other class alone (which one it confuses the target with), and how many
    questions went to each class."""
    out: dict[str, float] = {}
    for c in sorted(set(test_y.tolist()) - {target}):
        pair = (test_y == target) | (test_y == c)
        out[f"auroc_vs:{class_name(sc, c)}"] = metrics.auroc(
            test_scores[pair], test_y[pair] == target
        )
    for c in sorted(set(test_y.tolist())):
        out[f"asked:{class_name(sc, c)}"] = float(asked.count(c))
    return out


SeedResult = dict[str, list[dict[str, float]]]


def _job(args: tuple[RunConfig, int]) -> tuple[SeedResult, dict[str, float] | None]:
    config, seed = args
    sc = config.scenario
    stream = build_stream(sc, seed)
    out: SeedResult = {}
    for name in config.methods:
        if sc.two_users:
            from bench.paper.two_users import run_two_users

            out.update(run_two_users(name, sc, _context(config, stream, seed), stream))
        else:
            out[name] = run_method(name, config, seed, stream)
    calibration = None
    if sc.dataset == "ztf-real":
        from bench.paper.calibration import calibration_scores

        calibration = calibration_scores(sc, seed)
    return out, calibration


def aggregate(per_seed: Sequence[SeedResult], config: RunConfig) -> dict[str, Any]:
    """Mean and std over seeds, per night and for the final night, in the documented JSON shape
    (one entry per method, or per method and user with two users)."""
    methods: dict[str, Any] = {}
    for name in per_seed[0]:
        runs = [seed_result[name] for seed_result in per_seed]
        per_night = []
        for n in range(config.scenario.nights):
            entry: dict[str, Any] = {"night": n + 1}
            for m in METRICS:
                entry[m] = metrics.summarize([run[n][m] for run in runs])
            per_night.append(entry)
        methods[name] = {
            "final": {m: per_night[-1][m] for m in METRICS},
            "per_night": per_night,
            "seconds_per_seed": metrics.summarize([sum(n["seconds"] for n in run) for run in runs]),
            "runs": [{m: run[-1][m] for m in METRICS} for run in runs],
            "by_class": {
                key: metrics.summarize([run[-1].get(key, float("nan")) for run in runs])
                for key in runs[0][-1]
                if key.startswith(("auroc_vs:", "asked:"))
            },
        }
    return {"config": config.to_dict(), "methods": methods}


def _seed_line(seed: int, result: SeedResult) -> str:
    aurocs = ", ".join(f"{m} {nights[-1]['test_auroc']:.3f}" for m, nights in result.items())
    return f"seed {seed} done (held-out AUROC: {aurocs})"


def run(
    config: RunConfig, jobs: int | None = None, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Every method and seed; seeds in parallel over ``jobs`` processes (default: all cores)."""
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(config.seeds)))
    args = [(config, seed) for seed in config.seeds]
    done: list[tuple[SeedResult, dict[str, float] | None]] = []
    if jobs == 1:
        for a in args:
            done.append(_job(a))
            if progress:
                progress(_seed_line(a[1], done[-1][0]))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for a, res in zip(args, pool.map(_job, args), strict=True):
                done.append(res)
                if progress:
                    progress(_seed_line(a[1], res[0]))
    results = aggregate([r for r, _ in done], config)
    calibrations = [c for _, c in done if c is not None]
    if calibrations:
        from bench.paper.calibration import summarize

        results["calibration"] = {"per_seed": calibrations, **summarize(calibrations)}
    return results
