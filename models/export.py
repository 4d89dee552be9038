"""Export a trained :class:`~models.learner.AhuntLearner` to a served ONNX model directory.

The served graph is the whole scoring path after preprocessing, in one file::

    stamps (batch, C, H, W) float32 -> latent (batch, D), probs (batch, K+1), novelty (batch,)

``probs`` is the softmax over every class, reserve included at column 0, and ``novelty`` is the
k-NN latent detector's score, so the scorer needs onnxruntime and numpy only (no torch).

Two rules make a published model trustworthy:

* **Atomic directories.** :func:`export_onnx` builds the model and its manifest in a temporary
  directory next to the destination and renames it into place only once everything has passed.
  A crash, a failed export or a failed parity check therefore never leaves a half-written model
  where the registry or the scorer could pick it up; ``out_dir`` either does not exist or is
  complete.
* **Parity at every export.** The exporter is a compiler: an operator translated differently, a
  dynamic axis specialised to the example batch or dropout left on would all give a model that
  loads fine and scores wrongly. Every export runs the written file in onnxruntime against the
  torch module on several batch sizes and refuses to publish if any output differs by more than
  the tolerance (see :func:`check_parity`). The measured difference goes into the manifest.

Loading for serving is in :mod:`models.session` (torch-free), the directory checks in
:mod:`models.model_dir`.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import errno
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

from models.detector import REFERENCE_QUANTILE, KnnDetector
from models.learner import AhuntLearner
from models.manifest import INPUT_NAME, MODEL_FILE, OUTPUT_NAMES, Manifest, utc_now_iso
from models.model_dir import fsync_path, sha256_file, write_manifest
from models.network import AhuntNet
from models.preprocess import Preprocessing

__all__ = [
    "DEFAULT_TOLERANCE",
    "ExportParityError",
    "ServedModel",
    "check_parity",
    "export_onnx",
]

DEFAULT_TOLERANCE = 1e-4
# Parity batch sizes run in addition to the parity inputs: 1 and an odd size other than the
# export example prove the batch axis is really dynamic.
PARITY_BATCH_SIZES = (1, 7)
_DEFAULT_PARITY_BATCH = 16
# The trace example: not 0 or 1, which torch.export would specialise on.
_EXPORT_EXAMPLE_BATCH = 3
_SEED = 0


class ExportParityError(RuntimeError):
    """The exported graph does not reproduce the torch module (or produced non-finite values)."""


class ServedModel(nn.Module):
    """What gets exported: ``forward(stamps) -> (latent, probs, novelty)``.

    Holds deep copies of the learner's network and detector, so exporting never changes the
    learner (its training mode, its weights during later fine-tuning) and the served module never
    changes under the export. It is always in eval mode: ``train(True)`` is ignored, since dropout
    in a served graph would make every score random.

    The detector computes in float64 (see ``models.detector``), so torch and onnxruntime agree
    to ~1e-6 on novelty as on the other outputs.
    """

    def __init__(self, learner: AhuntLearner) -> None:
        super().__init__()
        if learner.detector is None:
            raise ValueError(
                "the learner has no latent detector: call learner.fit_detector(x) before export"
            )
        self.net: AhuntNet = copy.deepcopy(learner.net)
        self.detector: KnnDetector = copy.deepcopy(learner.detector)
        self.classes: list[str] = list(learner.classes)
        self.eval()
        for parameter in self.parameters():
            parameter.requires_grad_(False)

    def train(self, mode: bool = True) -> Self:
        """Always eval: see the class docstring."""
        return super().train(False)

    def forward(self, stamps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        latent, logits = self.net(stamps)
        novelty = self.detector(latent)
        return latent, torch.softmax(logits, dim=1), novelty


def check_parity(
    expected: Sequence[np.ndarray],
    actual: Sequence[np.ndarray],
    tolerance: float = DEFAULT_TOLERANCE,
    *,
    names: Sequence[str] | None = None,
) -> float:
    """Largest absolute difference between matching arrays; raise if the outputs disagree.

    Raises :class:`ExportParityError` naming the output when the counts or a shape differ, any
    value on either side is NaN or infinite, or the difference exceeds ``tolerance``. ``names``
    label the outputs in messages (default: ``latent``, ``probs``, ``novelty`` when there are
    three).

    >>> check_parity([np.zeros(2)], [np.full(2, 1e-6)])
    1e-06
    """
    if not (np.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be finite and >= 0, got {tolerance!r}")
    if len(expected) != len(actual):
        raise ExportParityError(f"expected {len(expected)} outputs, got {len(actual)}")
    if names is None:
        names = OUTPUT_NAMES if len(expected) == len(OUTPUT_NAMES) else ()
    labels = [names[i] if i < len(names) else f"output {i}" for i in range(len(expected))]
    worst = 0.0
    for label, exp, act in zip(labels, expected, actual, strict=True):
        e = np.asarray(exp, dtype=np.float64)
        a = np.asarray(act, dtype=np.float64)
        if e.shape != a.shape:
            raise ExportParityError(f"{label}: shape {a.shape} differs from expected {e.shape}")
        if not np.isfinite(e).all():
            raise ExportParityError(f"{label}: the reference (torch) output has non-finite values")
        if not np.isfinite(a).all():
            raise ExportParityError(f"{label}: the exported output has non-finite values")
        diff = float(np.max(np.abs(e - a))) if e.size else 0.0
        if diff > tolerance:
            raise ExportParityError(
                f"{label}: max abs diff {diff:.3g} exceeds tolerance {tolerance:.3g}"
            )
        worst = max(worst, diff)
    return worst


def _outputs_description(served: ServedModel) -> dict[str, Any]:
    latent_dim = served.net.config.latent_dim
    n_classes = len(served.classes)
    return {
        "latent": {
            "index": 0,
            "dtype": "float32",
            "shape": ["batch", latent_dim],
            "meaning": "encoder latent features (non-negative), the space the detector uses",
        },
        "probs": {
            "index": 1,
            "dtype": "float32",
            "shape": ["batch", n_classes],
            "meaning": "softmax over classes; column i is classes[i], column 0 is the reserve "
            "('none of the above') class; rows sum to 1",
        },
        "novelty": {
            "index": 2,
            "dtype": "float32",
            "shape": ["batch"],
            "meaning": "k-NN latent novelty: distance to the k-th nearest reference latent over "
            f"the {REFERENCE_QUANTILE:g} quantile of the reference bank's own; ~1 means as "
            "isolated as the most isolated 5% of the reference data; unbounded",
        },
    }


def _rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``, failing with FileExistsError if ``dst`` exists.

    ``os.rename`` silently replaces an *empty* destination directory on POSIX, so Linux's
    ``renameat2(RENAME_NOREPLACE)`` is used where available; elsewhere the existence check and
    the rename are two steps (a race only between two exporters choosing the same version).
    """
    renameat2 = None
    with contextlib.suppress(OSError, AttributeError):
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    if renameat2 is not None:
        at_fdcwd, rename_noreplace = -100, 1
        rc = renameat2(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), rename_noreplace)
        if rc == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST or err == errno.ENOTEMPTY:
            raise FileExistsError(errno.EEXIST, "model directory already exists", str(dst))
        if err not in (errno.ENOSYS, errno.EINVAL):  # ENOSYS/EINVAL: unsupported, fall back
            raise OSError(err, os.strerror(err), str(dst))
    if dst.exists() or dst.is_symlink():
        raise FileExistsError(errno.EEXIST, "model directory already exists", str(dst))
    os.rename(src, dst)


def _parity_batches(learner: AhuntLearner, parity_inputs: np.ndarray | None) -> list[np.ndarray]:
    spec = learner.spec
    rng = np.random.default_rng(_SEED)
    if parity_inputs is None:
        main = rng.normal(size=(_DEFAULT_PARITY_BATCH, *spec.shape)).astype(np.float32)
    else:
        main = np.ascontiguousarray(parity_inputs, dtype=np.float32)
        if main.ndim != 4 or tuple(main.shape[1:]) != spec.shape or len(main) == 0:
            raise ValueError(
                f"parity_inputs must be (N >= 1, {spec.shape}), got {tuple(main.shape)}"
            )
        if not np.isfinite(main).all():
            raise ValueError("parity_inputs must be finite (preprocessed) network inputs")
    extra = [rng.normal(size=(n, *spec.shape)).astype(np.float32) for n in PARITY_BATCH_SIZES]
    return [main, *extra]


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter warns about torchvision ops ("torchvision is not installed", through torch's
    own log handler) and pytree internals (warnings): none concern this graph, and users of
    ``ahunt demo`` or ``ahunt bootstrap`` would see them. Errors still show."""
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=FutureWarning)
            warnings.simplefilter("ignore", category=DeprecationWarning)
            yield
    finally:
        exporter_log.setLevel(level)


def _export_graph(served: ServedModel, path: Path, example: torch.Tensor) -> None:
    batch = torch.export.Dim("batch", min=1)
    with _quiet_exporter():
        torch.onnx.export(
            served,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamo=True,
            # Weights inside the .onnx: one file to hash, copy and load (the default writes a
            # side model.onnx.data file that the sha256 would not cover).
            external_data=False,
            dynamic_shapes={"stamps": {0: batch}},
            verbose=False,
        )


def _run_parity(
    served: ServedModel,
    model_path: Path,
    batches: Sequence[np.ndarray],
    tolerance: float,
    providers: Sequence[str],
) -> float:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(model_path), sess_options=options, providers=list(providers)
    )
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if inputs != [INPUT_NAME] or outputs != list(OUTPUT_NAMES):
        raise ExportParityError(f"exported graph has inputs {inputs} and outputs {outputs}")
    worst = 0.0
    for batch in batches:
        with torch.no_grad():
            expected = [t.numpy() for t in served(torch.from_numpy(batch))]
        actual = session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})
        try:
            worst = max(worst, check_parity(expected, actual, tolerance))
        except ExportParityError as exc:
            raise ExportParityError(f"batch of {len(batch)}: {exc}") from exc
    return worst


def export_onnx(
    learner: AhuntLearner,
    out_dir: str | os.PathLike[str],
    *,
    version: str,
    parent_version: str | None = None,
    survey: str | None = None,
    preprocessing: Preprocessing,
    metrics: Mapping[str, float] | None = None,
    training_counts: Mapping[str, int] | None = None,
    parity_inputs: np.ndarray | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    providers: Sequence[str] = ("CPUExecutionProvider",),
) -> Manifest:
    """Export ``learner`` to the new directory ``out_dir`` (``model.onnx`` + ``manifest.json``).

    Steps: build a :class:`ServedModel`; export it with a dynamic batch axis into a temporary
    directory beside ``out_dir`` (same file system, so the final rename is atomic); run it in
    onnxruntime (one intra-op thread, ``providers``) on ``parity_inputs`` (default: a seeded
    random batch of 16 of the learner's input shape) and on batches of 1 and 7 and compare with
    torch (:func:`check_parity`); hash the file; write the manifest; rename the directory to
    ``out_dir``. ``parity_inputs`` should be preprocessed real stamps when available: random
    normals do not exercise the ranges the model sees in production.

    ``training_counts`` defaults to ``learner.counts``. The parent directory is created if needed.
    Raises FileExistsError if ``out_dir`` exists (versions are immutable), ValueError for bad
    arguments and :class:`ExportParityError` on a parity failure; on any failure nothing is left
    at ``out_dir`` and the temporary directory is removed.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() or out_dir.is_symlink():
        raise FileExistsError(errno.EEXIST, "model directory already exists", str(out_dir))
    if not isinstance(preprocessing, Preprocessing):
        raise TypeError(f"preprocessing must be a Preprocessing, got {type(preprocessing)}")
    if not (np.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be finite and >= 0, got {tolerance!r}")
    served = ServedModel(learner)
    detector = served.detector
    batches = _parity_batches(learner, parity_inputs)
    counts = dict(learner.counts if training_counts is None else training_counts)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        model_path = tmp_dir / MODEL_FILE
        rng = np.random.default_rng(_SEED + 1)
        example = rng.normal(size=(_EXPORT_EXAMPLE_BATCH, *learner.spec.shape)).astype(np.float32)
        _export_graph(served, model_path, torch.from_numpy(example))
        written = sorted(p.name for p in tmp_dir.iterdir())
        if written != [MODEL_FILE]:
            raise RuntimeError(f"the exporter wrote {written}, expected only [{MODEL_FILE!r}]")
        fsync_path(model_path)

        diff = _run_parity(served, model_path, batches, tolerance, providers)
        model = onnx.load(str(model_path), load_external_data=False)
        opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))

        manifest = Manifest(
            version=version,
            parent_version=parent_version,
            created_at=utc_now_iso(),
            survey=survey,
            classes=list(served.classes),
            reserve_index=0,
            input_spec=learner.spec.to_dict(),
            preprocessing=preprocessing.to_dict(),
            outputs=_outputs_description(served),
            training_counts=counts,
            metrics=dict(metrics or {}),
            learner_config=learner.config.to_dict(),
            detector={
                "kind": "knn",
                "k": int(detector.k),
                "bank_size": int(detector.bank.shape[0]),
                "reference_scale": float(detector.reference),
                "reference_quantile": REFERENCE_QUANTILE,
            },
            model_file=MODEL_FILE,
            sha256=sha256_file(model_path),
            parity_max_abs_diff=diff,
            torch_version=str(torch.__version__),
            onnx_opset=int(opset),
        )
        write_manifest(tmp_dir, manifest)
        fsync_path(tmp_dir)
        _rename_noreplace(tmp_dir, out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    fsync_path(out_dir.parent)
    return manifest
