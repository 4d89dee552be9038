"""`ahunt bench soak` for a few seconds: the whole stack runs, users label, nothing is lost, and
every process's memory is sampled (the recorded run is in docs/RELIABILITY.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import format_result, run_soak, slope_mb_per_hour


def test_the_slope_is_least_squares_in_mb_an_hour_after_the_warm_up() -> None:
    samples = [(0.0, 500.0)] + [(float(t), 100.0 + t / 36.0) for t in range(60, 600, 60)]
    assert slope_mb_per_hour(samples, 30.0) == pytest.approx(100.0)  # 1 MB per 36 s
    assert slope_mb_per_hour(samples, 550.0) is None  # too few samples left


@pytest.mark.slow
def test_a_short_soak_loses_nothing_and_samples_every_process(tmp_path: Path) -> None:
    result = run_soak(
        minutes=0.15,
        rate=40.0,
        retrain_minutes=0.05,
        night_s=3.0,
        budget=10,
        pool=120,
        warmup_minutes=0.0,
        out=tmp_path,
        progress=lambda _line: None,
        sample_s=2.0,
        label_round_s=4.0,
    )
    assert result["produced"] == 360 and result["consumed"] >= 360
    assert result["dead_letters"] == 0 and not result["lost"], result
    assert sum(result["labels"].values()) > 0  # the users labelled along the stream
    assert set(result["memory_mb"]) == {"scorer", "feedback", "retrain", "broker", "redis"}
    for name, memory in result["memory_mb"].items():
        assert memory["samples"] >= 3 and memory["slope_mb_per_hour"] is not None, name
    assert "MB/hour" in format_result(result)
    assert (tmp_path / "soak.json").is_file()
