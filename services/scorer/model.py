"""A served model: an onnxruntime session plus what its manifest says about inputs and classes.

Loading verifies the sha256, builds the session and runs a warm-up batch, all off the hot path;
the scorer then swaps one reference between batches (see ``ModelSlot``), so no alert is ever
scored by a half-loaded model.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.checks import shape_problem
from models.manifest import Manifest
from models.preprocess import InputSpec, Preprocessing
from models.session import BATCH_SIZE, Outputs, load_session, run_session, session_uses_cuda


@dataclass(frozen=True)
class LoadedModel:
    manifest: Manifest
    session: object  # onnxruntime.InferenceSession (typed loosely: no stubs)
    spec: InputSpec
    preprocessing: Preprocessing
    uses_cuda: bool
    # Preprocessed real stamps the model was checked on at load (services.scorer.warmup): when
    # no alert of a batch scores, running these tells a broken model from broken alerts.
    probe: np.ndarray | None = None

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def classes(self) -> list[str]:
        return list(self.manifest.classes)

    def infer(self, x: np.ndarray, batch_size: int = BATCH_SIZE) -> Outputs:
        """The model's outputs on preprocessed stamps; raises on a wrong input or output shape.
        Non-finite values are left for the caller to find row by row (``handler``: one alert's
        NaN is that alert's dead letter, not the batch's)."""
        if x.shape[1:] != self.spec.shape:
            raise ValueError(f"model {self.version} expects {self.spec.shape}, got {x.shape[1:]}")
        if not len(x):
            k = len(self.manifest.classes)
            return Outputs(
                np.zeros((0, 0), np.float32), np.zeros((0, k), np.float32), np.zeros(0, np.float32)
            )
        out = run_session(self.session, x, batch_size)
        problem = shape_problem(out, len(x), self.manifest)
        if problem:
            raise ValueError(f"model {self.version}: {problem}")
        return out


def load_model(
    model_dir: str | Path, threads: int = 1, providers: Sequence[str] | None = None
) -> LoadedModel:
    """Verify, open and warm up a model directory (raises on any mismatch)."""
    session, manifest = load_session(model_dir, providers=providers, intra_op_threads=threads)
    model = LoadedModel(
        manifest,
        session,
        InputSpec.from_dict(manifest.input_spec),
        Preprocessing.from_dict(manifest.preprocessing),
        session_uses_cuda(session),
    )
    # Warm-up: the first run allocates and plans; do it here, not on the first live batch.
    model.infer(np.zeros((8, *model.spec.shape), np.float32))
    return model


class ModelSlot:
    """The current model per survey; ``swap`` replaces one reference atomically."""

    def __init__(self) -> None:
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def get(self, survey: str) -> LoadedModel | None:
        return self._models.get(survey)

    def swap(self, survey: str, model: LoadedModel) -> LoadedModel | None:
        with self._lock:
            old = self._models.get(survey)
            self._models = {**self._models, survey: model}
            return old

    def versions(self) -> dict[str, str]:
        return {s: m.version for s, m in self._models.items()}
