"""End-to-end smoke of `ahunt bench paper`: the real protocol on digits, one seed, few nights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.paper.runner import METRICS, RunConfig, run, run_method
from bench.paper.scenario import ScenarioConfig, build_stream
from models.learner import LearnerConfig
from models.questions import StrategyMix
from services.cli import main

SMOKE = ScenarioConfig(nights=6, questions=3)


def test_stream_is_deterministic_and_disjoint() -> None:
    a, b = build_stream(SMOKE, 3), build_stream(SMOKE, 3)
    assert np.array_equal(a.pool_x, b.pool_x) and np.array_equal(a.test_y, b.test_y)
    assert not np.array_equal(build_stream(SMOKE, 4).pool_x, a.pool_x)
    assert (a.night_of == 1).sum() == 4 * 5 + 2  # 5 normals of 4 classes + 2 anomalies
    assert set(np.unique(a.boot_y)) == {0, 1, 2, 3}  # the anomaly is never in the bootstrap


def test_too_long_a_stream_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not enough"):
        build_stream(ScenarioConfig(nights=100, anomalies_per_night=5), 0)


def test_ahunt_beats_pixel_forest_clearly() -> None:
    config = RunConfig(
        SMOKE,
        ("iforest-raw", "ahunt"),
        (0,),
        LearnerConfig(augment="shift"),
        StrategyMix.parse("top"),
    )
    results = run(config, jobs=1)
    final = {m: r["final"] for m, r in results["methods"].items()}
    ahunt, forest = final["ahunt"], final["iforest-raw"]
    assert ahunt["test_auroc"]["mean"] >= forest["test_auroc"]["mean"] + 0.15
    assert ahunt["test_auroc"]["mean"] > 0.9
    assert ahunt["found_fraction"]["mean"] > forest["found_fraction"]["mean"]
    assert len(results["methods"]["ahunt"]["per_night"]) == SMOKE.nights


def test_distractor_answers_keep_the_anomaly_on_top() -> None:
    scenario = ScenarioConfig(distractor=9, nights=5)
    nights = run_method(
        "ahunt",
        RunConfig(
            scenario, ("ahunt",), (1,), LearnerConfig(augment="shift"), StrategyMix.parse("top")
        ),
        seed=1,
    )
    assert nights[-1]["test_auroc"] > 0.9


def test_cli_writes_json_and_plot(tmp_path: Path) -> None:
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    code = main(
        [
            "bench",
            "paper",
            "--seeds",
            "1",
            "--nights",
            "2",
            "--methods",
            "iforest-raw,iforest-static,iforest-dynamic,ahunt",
            "--jobs",
            "1",
            "--min-epoch-samples",
            "256",
            "--label-smoothing",
            "0.05",
            "--json",
            str(out),
            "--plot",
            str(png),
        ]
    )
    assert code == 0
    results = json.loads(out.read_text())
    assert set(results["methods"]) == {"iforest-raw", "iforest-static", "iforest-dynamic", "ahunt"}
    final = results["methods"]["ahunt"]["final"]
    for metric in METRICS:
        assert set(final[metric]) == {"mean", "std"}
    assert results["config"]["normals"] == [0, 1, 2, 3]
    assert results["config"]["learner"]["min_epoch_samples"] == 256
    assert results["config"]["learner"]["label_smoothing"] == 0.05
    assert png.stat().st_size > 10_000
