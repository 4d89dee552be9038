"""The survey simulator: configuration, class mix, determinism, files on disk, truth kept out of
the packets, broken packets, and that the classes are learnable from the pixels."""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from services.cli import main as ahunt
from services.common.alerts import Alert, Rejected, decode_message
from services.tools.simulator import (
    BAD_KINDS,
    CLASSES,
    DEFAULT_MIX,
    SimulationConfig,
    bad_packets,
    simulate_night,
    simulate_stamps,
    write_simulation,
)
from services.tools.simulator.survey import draw_labels

UNIFORM = SimulationConfig(class_mix=dict.fromkeys(CLASSES, 1.0))


# --- configuration -----------------------------------------------------------------------------


def test_default_mix_is_the_survey_mix() -> None:
    config = SimulationConfig()
    assert config.class_mix == pytest.approx(DEFAULT_MIX)
    assert sum(config.class_mix.values()) == pytest.approx(1.0)
    assert set(config.class_mix) == set(CLASSES)


def test_mix_is_normalised_and_zero_weights_dropped() -> None:
    config = SimulationConfig(class_mix={"supernova": 3, "satellite": 1, "dipole": 0})
    assert config.class_mix == {"supernova": 0.75, "satellite": 0.25}
    assert config.probabilities() == (("supernova", "satellite"), [0.75, 0.25])


@pytest.mark.parametrize(
    "mix",
    [{"kilonova": 1.0}, {"supernova": -1.0, "satellite": 2.0}, {"supernova": 0.0}, {}],
)
def test_bad_mixes_are_refused(mix: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        SimulationConfig(class_mix=mix)


def test_bad_ranges_are_refused() -> None:
    with pytest.raises(ValidationError):
        SimulationConfig(seeing_range_px=(3.0, 2.0))


# --- classes and stamps ------------------------------------------------------------------------


def test_class_mix_within_tolerance_over_2000_alerts() -> None:
    labels = draw_labels(SimulationConfig(), 2000, np.random.default_rng(11))
    counts = Counter(labels)
    assert set(counts) == set(CLASSES)
    for name, expected in DEFAULT_MIX.items():
        share = counts[name] / 2000
        # ~4 binomial standard deviations: fails for a wrong mix, not for an unlucky seed
        tolerance = 4 * np.sqrt(expected * (1 - expected) / 2000)
        assert abs(share - expected) <= tolerance, (name, share, expected)


def test_custom_mix_is_followed() -> None:
    config = SimulationConfig(class_mix={"lensed_arc": 1.0, "satellite": 1.0})
    _, labels = simulate_stamps(config, 200, np.random.default_rng(2))
    counts = Counter(labels)
    assert set(counts) == {"lensed_arc", "satellite"}
    assert 70 <= counts["satellite"] <= 130


def test_stamps_are_finite_float32_triplets() -> None:
    stamps, labels = simulate_stamps(UNIFORM, 60, np.random.default_rng(3))
    assert stamps.shape == (60, 3, 63, 63) and stamps.dtype == np.float32
    assert np.isfinite(stamps).all()
    science, template, difference = stamps[:, 0], stamps[:, 1], stamps[:, 2]
    # Science and template sit on a sky of tens to hundreds of DN; the difference near zero
    assert (np.median(science, axis=(1, 2)) > 40).all()
    assert (np.median(template, axis=(1, 2)) > 40).all()
    assert (np.abs(np.median(difference, axis=(1, 2))) < 5).all()

    # The template is a deep coadd: less noisy than the science image in the same place
    def noise(images: np.ndarray) -> np.ndarray:
        return np.median(np.abs(np.diff(images, axis=2)), axis=(1, 2))

    assert (noise(template) < noise(science)).mean() > 0.9


def test_each_class_leaves_its_mark_in_the_difference() -> None:
    """Cheap physical checks per class on the difference stamp (sign-normalised as shipped)."""
    rng = np.random.default_rng(5)
    for name in CLASSES:
        stamps, _ = simulate_stamps(SimulationConfig(class_mix={name: 1.0}), 40, rng)
        diff = stamps[:, 2]
        sigma = 1.4826 * np.median(
            np.abs(diff - np.median(diff, axis=(1, 2), keepdims=True)), axis=(1, 2)
        )
        centre = diff[:, 28:35, 28:35].max(axis=(1, 2)) / sigma
        ring = _annulus(diff, 5, 12) / sigma
        edge = (
            np.concatenate(
                [
                    diff[:, :4].reshape(40, -1),
                    diff[:, -4:].reshape(40, -1),
                    diff[:, :, :4].reshape(40, -1),
                    diff[:, :, -4:].reshape(40, -1),
                ],
                axis=1,
            ).max(axis=1)
            / sigma
        )
        if name in ("supernova", "variable_star", "cosmic_ray", "dipole", "satellite"):
            assert np.median(centre) > 8, name  # something bright at the candidate
        if name == "dipole":  # a negative lobe next to the positive one
            assert np.median(diff[:, 26:37, 26:37].min(axis=(1, 2)) / sigma) < -8
        if name == "satellite":  # the trail reaches the edges of the stamp
            assert np.median(edge) > 8
        else:
            assert np.median(edge) < 8, name
        if name == "lensed_arc":  # the arcs, between 5 and 12 px from the lens
            assert np.median(ring) > 3
            assert np.median(ring) > 2 * np.median(diff[:, 29:34, 29:34].mean(axis=(1, 2)) / sigma)


def _annulus(images: np.ndarray, inner: float, outer: float) -> np.ndarray:
    """Mean of the 10% brightest pixels between ``inner`` and ``outer`` px from the centre."""
    rows, cols = np.indices(images.shape[1:])
    radius = np.hypot(rows - 31, cols - 31)
    values = images[:, (radius >= inner) & (radius <= outer)]
    top = np.sort(values, axis=1)[:, -values.shape[1] // 10 :]
    return top.mean(axis=1)


def test_classes_are_separable_from_the_difference_stamp() -> None:
    """A linear model on 3x-downsampled difference stamps finds the rare classes far above
    chance (AUC 0.5): they are learnable from few labels, the point of the demo."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    stamps, labels = simulate_stamps(UNIFORM, 600, np.random.default_rng(21))
    truth = np.array(labels)
    diff = stamps[:, 2, :60, :60].reshape(-1, 20, 3, 20, 3).mean(axis=(2, 4))
    centre = np.median(diff, axis=(1, 2), keepdims=True)
    scale = 1.4826 * np.median(np.abs(diff - centre), axis=(1, 2), keepdims=True) + 1e-3
    features = np.arcsinh((diff - centre) / scale).reshape(len(diff), -1)
    train, test = slice(0, 400), slice(400, None)
    for name in ("satellite", "lensed_arc"):
        model = LogisticRegression(C=0.1, max_iter=2000)
        model.fit(features[train], truth[train] == name)
        auc = roc_auc_score(truth[test] == name, model.predict_proba(features[test])[:, 1])
        assert auc > 0.9, (name, auc)


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    first = simulate_night(SimulationConfig(), 1, 12, np.random.default_rng(42))
    again = simulate_night(SimulationConfig(), 1, 12, np.random.default_rng(42))
    other = simulate_night(SimulationConfig(), 1, 12, np.random.default_rng(43))
    assert [a.packet for a in first] == [a.packet for a in again]
    assert [a.label for a in first] == [a.label for a in again]
    assert all(np.array_equal(a.stamps, b.stamps) for a, b in zip(first, again, strict=True))
    assert not any(a.packet == b.packet for a, b in zip(first, other, strict=True))


def test_stamps_are_deterministic() -> None:
    a, labels_a = simulate_stamps(SimulationConfig(), 20, np.random.default_rng(8))
    b, labels_b = simulate_stamps(SimulationConfig(), 20, np.random.default_rng(8))
    assert labels_a == labels_b and np.array_equal(a, b)


def test_written_files_are_the_api_alerts(tmp_path: Path) -> None:
    """write_simulation(seed) writes exactly simulate_night(default_rng([seed, night]))."""
    write_simulation(tmp_path, 2, 7, seed=5)
    for night in (1, 2):
        alerts = simulate_night(SimulationConfig(), night, 7, np.random.default_rng([5, night]))
        for alert in alerts:
            assert (tmp_path / f"night-{night:02d}" / alert.file_name).read_bytes() == alert.packet


# --- files, truth and broken packets ----------------------------------------------------------


def test_write_simulation_layout_truth_and_bad_packets(tmp_path: Path) -> None:
    summary = write_simulation(tmp_path, 2, 25, seed=9, bad_per_night=5)
    assert summary.alerts == 50 and summary.nights == 2 and summary.bad_packets == 10
    assert sum(summary.classes.values()) == 50
    assert summary.bad_kinds == dict.fromkeys(BAD_KINDS, 2)

    truth = _csv(tmp_path / "truth.csv")
    assert list(truth[0]) == ["alert_id", "object_id", "night", "class"]
    assert len(truth) == 50 and len({row["alert_id"] for row in truth}) == 50
    assert {row["class"] for row in truth} <= set(CLASSES)
    assert Counter(row["class"] for row in truth) == Counter(summary.classes)

    decoded: dict[str, Alert] = {}
    for night in (1, 2):
        folder = tmp_path / f"night-{night:02d}"
        files = sorted(folder.glob("*.avro"))
        assert len(files) == 25
        for path in files:
            (result,) = decode_message(path.read_bytes())
            assert isinstance(result, Alert), (path, result)
            decoded[result.alert_id] = result
        assert len(list((folder / "bad").glob("*.avro"))) == 5
    for row in truth:
        alert = decoded[row["alert_id"]]
        assert alert.object_id == row["object_id"]

    bad = _csv(tmp_path / "bad.csv")
    assert len(bad) == 10
    for row in bad:
        (result,) = decode_message((tmp_path / row["file"]).read_bytes())
        assert isinstance(result, Rejected), row
        assert result.reason == row["reason"], row
        assert (result.alert_id or "") == row["alert_id"], row
        assert row["alert_id"] not in decoded  # broken packets have their own ids


def test_truth_never_in_the_packets(tmp_path: Path) -> None:
    write_simulation(
        tmp_path,
        1,
        40,
        seed=3,
        bad_per_night=5,
        config=SimulationConfig(class_mix=dict.fromkeys(CLASSES, 1.0)),
    )
    names = [name.encode() for name in CLASSES]
    packets = list(tmp_path.rglob("*.avro"))
    assert len(packets) == 45
    for path in packets:
        payload = path.read_bytes()
        assert not any(name in payload for name in names), path
        assert not any(name in path.name.encode() for name in names), path
        for result in decode_message(payload):  # nor inside the (gunzipped) stamps
            if isinstance(result, Alert):
                for stamp in result.cutout_bytes:
                    fits = gzip.decompress(stamp)
                    assert not any(name in fits for name in names)


def test_an_earlier_simulation_is_not_mixed_into(tmp_path: Path) -> None:
    write_simulation(tmp_path, 2, 3, seed=1)
    with pytest.raises(FileExistsError):
        write_simulation(tmp_path, 1, 3, seed=2)
    write_simulation(tmp_path, 1, 4, seed=2, overwrite=True)
    assert not (tmp_path / "night-02").exists()
    assert len(_csv(tmp_path / "truth.csv")) == 4


@pytest.mark.parametrize("kind", list(BAD_KINDS))
def test_each_bad_kind_is_rejected_for_its_reason(kind: str) -> None:
    night = 1 + list(BAD_KINDS).index(kind)  # the rotation starts at night - 1
    (packet,) = bad_packets(
        SimulationConfig(), night, 1, np.random.default_rng(night), first_index=10
    )
    assert packet.kind == kind
    (result,) = decode_message(packet.packet)
    assert isinstance(result, Rejected)
    assert result.reason == BAD_KINDS[kind]
    assert result.alert_id == packet.alert_id


# --- the command ------------------------------------------------------------------------------


def test_ahunt_simulate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sim"
    status = ahunt(
        [
            "simulate",
            "--nights",
            "2",
            "--alerts-per-night",
            "6",
            "--seed",
            "4",
            "--out",
            str(out),
            "--bad-packets",
            "2",
            "--quiet",
        ]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert "wrote 12 alerts over 2 night(s)" in printed and "alerts/s" in printed
    assert len(list(out.glob("night-0[12]/*.avro"))) == 12
    assert len(list(out.glob("night-0[12]/bad/*.avro"))) == 4
    assert len(_csv(out / "truth.csv")) == 12 and len(_csv(out / "bad.csv")) == 4
    assert ahunt(["simulate", "--nights", "1", "--out", str(out)]) == 2  # refuses to mix
    bad_mix = ["simulate", "--out", str(tmp_path / "x"), "--mix", '{"kilonova": 1}']
    assert ahunt(bad_mix) == 2


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))
