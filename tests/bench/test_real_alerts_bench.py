"""`ahunt bench paper --dataset ztf-real` on a small subset of the real ZTF packets: the split is
by object, the weak-label fields never reach a model, and the command runs end to end."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from bench.paper.real_alerts import (
    LABEL_FIELDS,
    REAL_PREPROCESSING,
    load_real_alerts,
    read_labels,
)
from bench.paper.real_report import methods_table
from bench.paper.real_scenarios import real_scenario
from bench.paper.real_stream import build_real_stream, split_objects
from bench.paper.scenario import ScenarioConfig
from services.cli import main
from services.common.alerts import Alert
from tests.samples import ROOT, read_container, write_container

REAL = ROOT / "ztf-real"
PER_CLASS = 12
CLASSES = ("known_sso", "bogus", "star_variable", "real_other")


def _rows() -> list[dict[str, str]]:
    labels = REAL / "labels.csv"
    if not labels.is_file():
        pytest.skip(f"{labels} not found")
    with labels.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PER_CLASS alerts of each class, under new names in nested folders, with a labels file in
    the other accepted header form: nothing may depend on the shared set's file names."""
    rows = sorted(_rows(), key=lambda r: r["candid"])
    out = tmp_path_factory.mktemp("ztf-subset")
    picked: list[tuple[str, str]] = []
    for name in CLASSES:
        for i, row in enumerate([r for r in rows if r["label"] == name][:PER_CLASS]):
            target = out / f"night{i % 3}" / f"packet-{len(picked):03d}.avro"
            target.parent.mkdir(exist_ok=True)
            shutil.copy(REAL / row["file"], target)
            picked.append((row["candid"], name))
    with (out / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["alert_id", "class"])
        writer.writerows(picked)
    return out


def test_split_objects_never_puts_an_object_on_both_sides() -> None:
    rng = np.random.default_rng(0)
    objects = np.asarray([f"ZTF{i // 3:04d}" for i in range(300)])  # 3 alerts per object
    y = rng.integers(0, 3, size=300)
    held = split_objects(objects, y, 0.3, np.random.default_rng(5))
    assert not set(objects[held]) & set(objects[~held])
    assert 0.2 < held.mean() < 0.4  # about the fraction asked, in alerts too
    again = split_objects(objects, y, 0.3, np.random.default_rng(5))
    assert np.array_equal(held, again)


def test_the_real_stream_is_split_by_object(subset: Path) -> None:
    base = ScenarioConfig(dataset="ztf-real", nights=2, pre=(20,), per_night=(5,))
    config = real_scenario(base, "R1", subset, None, 21)
    stream = build_real_stream(config, seed=1)
    assert stream.objects is not None
    boot, pool, test = (set(o.tolist()) for o in stream.objects)
    assert len(test) > 0 and len(pool) > 0
    assert not (boot | pool) & test
    assert stream.pool_x.shape[1:] == (3, 21, 21)
    assert set(stream.boot_y.tolist()) == set(config.normals)  # no anomaly in the bootstrap


def test_label_fields_never_reach_the_model(subset: Path, tmp_path: Path) -> None:
    """The alert the loader keeps has none of the label fields, and scrambling them in every
    packet leaves the network input bit for bit the same."""
    assert not {f.name for f in fields(Alert)} & set(LABEL_FIELDS)
    scrambled = tmp_path / "scrambled"
    for path in subset.rglob("*.avro"):
        schema, records = read_container(path)
        for record in records:
            candidate = record["candidate"]
            for name in LABEL_FIELDS:
                value = candidate.get(name)
                if isinstance(value, float):
                    candidate[name] = -value - 1.0
                elif isinstance(value, str):
                    candidate[name] = value[::-1] + "x"
        target = scrambled / path.relative_to(subset)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(write_container(schema, records))
    labels = str(subset / "labels.csv")
    original = load_real_alerts(str(subset), labels, 0, REAL_PREPROCESSING)
    changed = load_real_alerts(str(scrambled), labels, 0, REAL_PREPROCESSING)
    assert original.alert_ids == changed.alert_ids
    assert np.array_equal(original.x, changed.x)
    assert np.isfinite(original.x).all()


def test_a_labels_file_without_an_id_column_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "labels.csv"
    bad.write_text("file,label\na.avro,bogus\n")
    with pytest.raises(ValueError, match="id column"):
        read_labels(bad)


def test_too_few_alerts_for_the_nights_is_a_clear_error(subset: Path) -> None:
    base = ScenarioConfig(dataset="ztf-real", nights=40)
    with pytest.raises(ValueError, match=r"not enough \w+ alerts \(12\) for 40 nights"):
        build_real_stream(real_scenario(base, "R1", subset, None, 21), seed=0)


@pytest.mark.parametrize("scenario", ["R1", "R3"])
def test_the_command_runs_on_real_packets(subset: Path, tmp_path: Path, scenario: str) -> None:
    out = tmp_path / "r.json"
    code = main(
        [
            *("bench", "paper", "--dataset", "ztf-real", "--scenario", scenario),
            *("--alerts", str(subset), "--labels", str(subset / "labels.csv")),
            *("--seeds", "1", "--nights", "2", "--jobs", "1", "--crop", "21"),
            *("--methods", "iforest-raw,ahunt", "--min-epoch-samples", "64"),
            *("--pretrain-epochs", "1", "--json", str(out)),
        ]
    )
    assert code == 0
    results = json.loads(out.read_text())
    expected = {"iforest-raw", "ahunt"}
    if scenario == "R3":
        expected = {f"{m}@{u}" for m in expected for u in ("known_sso", "bogus")}
    assert set(results["methods"]) == expected
    for res in results["methods"].values():
        assert 0.0 <= res["final"]["test_auroc"]["mean"] <= 1.0
        assert len(res["per_night"]) == 2
    assert 0.0 <= results["calibration"]["auroc"]["mean"] <= 1.0
    assert results["config"]["class_names"][:2] == ["real_other", "star_variable"]
    # docs/BENCHMARKS.md renders from these files: a calibration row for every user.
    table = methods_table(results)
    users = ("@known_sso", "@bogus") if scenario == "R3" else ("",)
    assert all(f"every label{u} |" in table for u in users), table


def test_progress_lines_render_the_finished_seeds(tmp_path: Path) -> None:
    from bench.paper.real_report import progress_table

    log = tmp_path / "ztf-real-R9.log"
    log.write_text(
        "ahunt bench paper: ztf-real, methods ahunt, 5 seeds, 15 nights\n"
        "  seed 0 done (held-out AUROC: iforest-raw 0.400, ahunt 0.900)\n"
        "  seed 1 done (held-out AUROC: iforest-raw 0.200, ahunt 0.800)\n"
    )
    row = progress_table([str(log)]).splitlines()[-1]
    assert row.startswith("| ztf-real-R9 | 0, 1 |")
    assert "ahunt: 0.900 / 0.800 (0.850)" in row and "iforest-raw: 0.400 / 0.200 (0.300)" in row
