"""Smoke test of the retrain benchmark (bench/retrain.py) at a tiny size."""

from __future__ import annotations

import json
from pathlib import Path

from bench import retrain


def test_the_retrain_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "retrain.json"
    argv = ["--labels", "60", "--pool", "20", "--size", "24", "--epochs", "1", "--threads", "1"]
    assert retrain.main([*argv, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["version"] == "ztf-0002" and report["labels"] == 60
    assert set(report["durations_s"]) >= {"dataset", "train", "export", "gate", "publish", "total"}
    assert report["timed_s"] <= report["durations_s"]["total"]
    assert report["classes"][0] == "reserve" and len(report["classes"]) == 5
