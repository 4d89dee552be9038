"""ONNX export, parity and the model manifest (models.export, models.manifest)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import torch

from models import export as export_module
from models.export import ExportParityError, ServedModel, check_parity, export_onnx
from models.learner import AhuntLearner, LearnerConfig
from models.manifest import Manifest, parse_created_at
from models.model_dir import (
    ModelIntegrityError,
    read_manifest,
    sha256_file,
    verify_model_dir,
    write_manifest,
)
from models.preprocess import InputSpec, Preprocessing
from models.session import load_session, session_uses_cuda

TINY = LearnerConfig(pretrain_epochs=1, min_epoch_samples=64, augment="none")
METRICS = {"auroc": 0.91, "r_precision": 0.5}
ROOT = Path(__file__).resolve().parents[2]


def _learner(spec: InputSpec, seed: int = 0) -> tuple[AhuntLearner, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, *spec.shape)).astype(np.float32)
    learner = AhuntLearner(spec, ["a", "b"], TINY, seed=seed)
    learner.fit(x, ["a"] * 32 + ["b"] * 32)
    learner.fit_detector(x)
    return learner, x


@pytest.fixture(scope="module")
def trained() -> tuple[AhuntLearner, np.ndarray]:
    return _learner(InputSpec(1, 8, 8))


@pytest.fixture(scope="module")
def exported(
    trained: tuple[AhuntLearner, np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Manifest]:
    learner, x = trained
    out = tmp_path_factory.mktemp("registry") / "ztf-0002"
    manifest = export_onnx(
        learner,
        out,
        version="ztf-0002",
        parent_version="ztf-0001",
        survey="ztf",
        preprocessing=Preprocessing("identity"),
        metrics=METRICS,
        parity_inputs=x[:16],
    )
    return out, manifest


def _torch_outputs(learner: AhuntLearner, x: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        return [t.numpy() for t in ServedModel(learner)(torch.from_numpy(x))]


# --- export and parity ------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 7, 64])
def test_reloaded_session_matches_torch(
    trained: tuple[AhuntLearner, np.ndarray], exported: tuple[Path, Manifest], n: int
) -> None:
    learner, x = trained
    session, _ = load_session(exported[0])
    actual = session.run(["latent", "probs", "novelty"], {"stamps": x[:n]})
    assert [a.shape for a in actual] == [(n, 64), (n, 3), (n,)]
    assert check_parity(_torch_outputs(learner, x[:n]), actual) <= 1e-4
    # Against the learner's own inference path too (what training and the benchmark use).
    pred = learner.predict(x[:n])
    assert check_parity([pred.latent, pred.probs, pred.novelty], actual) <= 1e-4


def test_probs_rows_sum_to_one(
    trained: tuple[AhuntLearner, np.ndarray], exported: tuple[Path, Manifest]
) -> None:
    session, _ = load_session(exported[0])
    probs = session.run(["probs"], {"stamps": trained[1]})[0]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs >= 0).all()


def test_directory_holds_one_model_file_and_the_manifest(
    exported: tuple[Path, Manifest],
) -> None:
    out, _ = exported
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.onnx"]
    # No temporary directory is left beside it.
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_manifest_contents(
    trained: tuple[AhuntLearner, np.ndarray], exported: tuple[Path, Manifest]
) -> None:
    learner, _ = trained
    out, returned = exported
    manifest = read_manifest(out)
    assert manifest == returned
    assert manifest.classes == ["reserve", "a", "b"] and manifest.reserve_index == 0
    assert InputSpec.from_dict(manifest.input_spec) == learner.spec
    assert Preprocessing.from_dict(manifest.preprocessing) == Preprocessing("identity")
    assert manifest.training_counts == {"a": 32, "b": 32}
    assert manifest.metrics == METRICS
    assert manifest.sha256 == sha256_file(out / "model.onnx")
    assert manifest.version == "ztf-0002" and manifest.parent_version == "ztf-0001"
    assert manifest.survey == "ztf"
    created = parse_created_at(manifest.created_at)
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=10)
    assert LearnerConfig.from_dict(manifest.learner_config) == learner.config
    assert manifest.detector["kind"] == "knn" and manifest.detector["k"] == 5
    assert manifest.detector["bank_size"] == 64 and manifest.detector["reference_scale"] > 0
    assert manifest.outputs["probs"]["shape"] == ["batch", 3]
    assert [manifest.outputs[o]["index"] for o in ("latent", "probs", "novelty")] == [0, 1, 2]
    assert 0 <= manifest.parity_max_abs_diff <= 1e-4
    assert manifest.torch_version == torch.__version__ and manifest.onnx_opset >= 17


def test_manifest_json_round_trip(exported: tuple[Path, Manifest]) -> None:
    manifest = exported[1]
    text = manifest.to_json()
    assert Manifest.from_json(text) == manifest
    assert list(json.loads(text)) == sorted(json.loads(text))


def test_manifest_rejects_unknown_format_and_missing_keys(exported: tuple[Path, Manifest]) -> None:
    data = json.loads(exported[1].to_json())
    with pytest.raises(ValueError, match="format_version"):
        Manifest.from_json(json.dumps(data | {"format_version": 2}))
    del data["sha256"]
    with pytest.raises(ValueError, match="missing"):
        Manifest.from_json(json.dumps(data))
    with pytest.raises(ValueError, match="plain file name"):
        exported[1].replace(model_file="../other.onnx")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"onnx_opset": True}, "integer"),  # strict: a bool is not a number
        ({"training_counts": {"a": "3"}}, "integer"),
        ({"metrics": {"auroc": float("nan")}}, "finite"),
        ({"classes": ["reserve", "a", "a"]}, "duplicates"),
        ({"reserve_index": 3}, "out of range"),
        ({"sha256": "ABC"}, "pattern"),
        ({"created_at": "2025-01-01T00:00:00"}, "ending in 'Z'"),
        ({"format_version": 2}, "format_version"),
        ({"outputs": {"probs": {}}}, "lacks"),
    ],
)
def test_manifest_validation(
    exported: tuple[Path, Manifest], change: dict[str, object], why: str
) -> None:
    with pytest.raises(ValueError, match=why):
        exported[1].replace(**change)


def test_write_manifest_replaces_atomically(
    exported: tuple[Path, Manifest], tmp_path: Path
) -> None:
    first = exported[1]
    write_manifest(tmp_path, first)
    write_manifest(tmp_path, first.replace(version="ztf-0003"))
    assert read_manifest(tmp_path).version == "ztf-0003"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_tampered_model_is_rejected(exported: tuple[Path, Manifest], tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(exported[0], copy)
    verify_model_dir(copy)  # the intact copy passes
    model = copy / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        verify_model_dir(copy)
    with pytest.raises(ModelIntegrityError):
        load_session(copy)
    model.unlink()
    with pytest.raises(ModelIntegrityError, match="missing"):
        verify_model_dir(copy)


def test_export_into_existing_dir_fails(
    trained: tuple[AhuntLearner, np.ndarray], tmp_path: Path
) -> None:
    (tmp_path / "ztf-0001").mkdir()
    with pytest.raises(FileExistsError):
        export_onnx(
            trained[0], tmp_path / "ztf-0001", version="ztf-0001", preprocessing=Preprocessing()
        )
    assert [p.name for p in tmp_path.iterdir()] == ["ztf-0001"]


def test_parity_failure_leaves_nothing(
    trained: tuple[AhuntLearner, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*args: object, **kwargs: object) -> float:
        raise ExportParityError("novelty: max abs diff 1 exceeds tolerance 0.0001")

    monkeypatch.setattr(export_module, "check_parity", failing)
    with pytest.raises(ExportParityError, match="novelty"):
        export_onnx(trained[0], tmp_path / "m", version="m", preprocessing=Preprocessing())
    assert list(tmp_path.iterdir()) == []


def test_session_on_cpu_does_not_use_cuda(exported: tuple[Path, Manifest]) -> None:
    session, _ = load_session(exported[0])
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert session_uses_cuda(session) is False


def test_survey_sized_model_exports_with_parity(tmp_path: Path) -> None:
    learner, x = _learner(InputSpec(3, 63, 63), seed=1)
    manifest = export_onnx(
        learner, tmp_path / "ztf-0001", version="ztf-0001", preprocessing=Preprocessing()
    )
    assert manifest.parity_max_abs_diff <= 1e-4
    session, _ = load_session(tmp_path / "ztf-0001")
    actual = session.run(None, {"stamps": x[:5]})
    assert check_parity(_torch_outputs(learner, x[:5]), actual) <= 1e-4


# --- ServedModel and check_parity -------------------------------------------------------------


def test_served_model_needs_a_detector() -> None:
    learner = AhuntLearner(InputSpec(1, 8, 8), ["a"], TINY)
    with pytest.raises(ValueError, match="detector"):
        ServedModel(learner)


def test_served_model_stays_in_eval_and_leaves_learner_alone(
    trained: tuple[AhuntLearner, np.ndarray],
) -> None:
    learner, _ = trained
    learner.net.train()
    try:
        served = ServedModel(learner).train()
        assert not served.training and not served.net.training
        assert learner.net.training  # the learner's own module was not switched
    finally:
        learner.net.eval()


def test_check_parity_returns_max_diff() -> None:
    a = [np.zeros((2, 3), np.float32), np.ones(2, np.float32)]
    b = [np.full((2, 3), 5e-5, np.float32), np.ones(2, np.float32)]
    assert check_parity(a, b) == pytest.approx(5e-5)


def test_check_parity_raises_on_diff_shape_and_nan() -> None:
    base = [np.zeros((2, 4)), np.zeros((2, 3)), np.zeros(2)]
    over = [base[0], base[1] + 1e-3, base[2]]
    with pytest.raises(ExportParityError, match=r"probs: max abs diff 0\.001"):
        check_parity(base, over)
    with pytest.raises(ExportParityError, match="novelty: shape"):
        check_parity(base, [base[0], base[1], np.zeros(3)])
    nan = [base[0], base[1], np.array([0.0, np.nan])]
    with pytest.raises(ExportParityError, match="novelty: .*non-finite"):
        check_parity(base, nan)
    with pytest.raises(ExportParityError, match="non-finite"):
        check_parity(nan, base)
    with pytest.raises(ExportParityError, match="outputs"):
        check_parity(base, base[:2])


def test_final_rename_never_replaces_an_existing_dir(tmp_path: Path) -> None:
    # os.rename would silently replace an empty directory; the export's rename must not.
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "model.onnx").write_bytes(b"x")
    dst.mkdir()
    with pytest.raises(FileExistsError):
        export_module._rename_noreplace(src, dst)
    assert list(dst.iterdir()) == [] and (src / "model.onnx").exists()
    export_module._rename_noreplace(src, tmp_path / "new")
    assert (tmp_path / "new" / "model.onnx").read_bytes() == b"x"


def test_export_prints_nothing_for_users(tmp_path: Path) -> None:
    """torch's exporter logs "torchvision is not installed ..." through its own stderr handler
    (once per process, so this runs in a fresh one): `ahunt demo` and `ahunt bootstrap` users
    must not see it."""
    code = (
        "import numpy as np, sys\n"
        "from models.export import export_onnx\n"
        "from models.learner import AhuntLearner, LearnerConfig\n"
        "from models.preprocess import InputSpec, Preprocessing\n"
        "spec = InputSpec(1, 8, 8)\n"
        "x = np.random.default_rng(0).normal(size=(16, 1, 8, 8)).astype(np.float32)\n"
        "learner = AhuntLearner(spec, ['a'], LearnerConfig(min_epoch_samples=16), seed=0)\n"
        "learner.fit(x, ['a'] * 16, epochs=1)\n"
        "learner.fit_detector(x)\n"
        f"export_onnx(learner, {str(tmp_path / 'm')!r}, version='ztf-0001', survey='ztf',\n"
        "            preprocessing=Preprocessing('identity'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (out.stdout + out.stderr).strip() == ""
