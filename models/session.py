"""A served model in onnxruntime: open a verified model directory, run it in bounded batches.

:func:`run_session` is the one ONNX inference of the project: the scorer (``LoadedModel.infer``)
and the retrain gate both run their models through it. Torch-free, like the whole serving path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.manifest import INPUT_NAME, OUTPUT_NAMES, Manifest
from models.model_dir import ModelIntegrityError, read_verified

if TYPE_CHECKING:  # onnxruntime is imported lazily: reading a manifest must not need it.
    import onnxruntime

__all__ = ["BATCH_SIZE", "Outputs", "load_session", "run_session", "session_uses_cuda"]

# Rows per onnxruntime run: bounds the memory of a run whatever the number of stamps.
BATCH_SIZE = 256
# Providers that mean "this session runs on a GPU".
_GPU_PROVIDERS = frozenset({"CUDAExecutionProvider", "TensorrtExecutionProvider"})


@dataclass(frozen=True)
class Outputs:
    """A served model's outputs for N stamps: latent (N, D), probs (N, K+1) with the reserve at
    the manifest's ``reserve_index``, novelty (N,)."""

    latent: np.ndarray
    probs: np.ndarray
    novelty: np.ndarray

    def take(self, rows: Any) -> Outputs:
        """The outputs of some rows (a slice, an index array or a boolean mask)."""
        return Outputs(self.latent[rows], self.probs[rows], self.novelty[rows])


def run_session(session: Any, x: np.ndarray, batch_size: int = BATCH_SIZE) -> Outputs:
    """The three outputs of ``session`` (an onnxruntime session of a served model) on ``x``
    (N >= 1 preprocessed stamps), ``batch_size`` rows per run."""
    if not len(x):
        raise ValueError("run_session needs at least one stamp")
    parts: list[list[np.ndarray]] = [[], [], []]
    for start in range(0, len(x), batch_size):
        batch = np.ascontiguousarray(x[start : start + batch_size], dtype=np.float32)
        for part, out in zip(
            parts, session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch}), strict=True
        ):
            part.append(np.asarray(out))
    latent, probs, novelty = (np.concatenate(p) for p in parts)
    return Outputs(latent, probs, novelty)


def load_session(
    model_dir: str | os.PathLike[str],
    providers: Sequence[str] | None = None,
    intra_op_threads: int = 1,
) -> tuple[onnxruntime.InferenceSession, Manifest]:
    """Verify ``model_dir`` and open an onnxruntime session on it.

    The session is built from the very bytes whose sha256 was checked (not by re-opening the
    path), so a file replaced between the check and the load is still caught. ``providers``
    defaults to CPU only; pass e.g. ``("CUDAExecutionProvider", "CPUExecutionProvider")`` to try
    a GPU and use :func:`session_uses_cuda` to see whether onnxruntime actually got one.
    ``intra_op_threads`` defaults to 1: on shared cores one thread per worker process scales
    better than threads inside one session (see docs/PLATFORM.md).

    Raises :class:`~models.model_dir.ModelIntegrityError` if the directory fails verification or
    the graph's input/output names do not match the manifest.
    """
    import onnxruntime  # lazy: reading a manifest must not require onnxruntime

    if intra_op_threads < 1:
        raise ValueError(f"intra_op_threads must be >= 1, got {intra_op_threads}")
    data, manifest = read_verified(Path(model_dir))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        data, sess_options=options, providers=list(providers or ("CPUExecutionProvider",))
    )
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if inputs != [INPUT_NAME] or outputs != list(OUTPUT_NAMES):
        raise ModelIntegrityError(
            f"{model_dir}: graph has inputs {inputs} and outputs {outputs}, expected "
            f"[{INPUT_NAME!r}] and {list(OUTPUT_NAMES)}"
        )
    return session, manifest


def session_uses_cuda(session: onnxruntime.InferenceSession) -> bool:
    """Whether ``session`` really runs on a GPU provider.

    Uses ``session.get_providers()`` (what the session got), never
    ``onnxruntime.get_available_providers()``: onnxruntime-gpu lists CUDA there even on machines
    without a GPU, and a session that asked for CUDA silently falls back to CPU.
    """
    return any(p in _GPU_PROVIDERS for p in session.get_providers())
