"""From a trained learner to a published version: export, gate, publish, promote or reject.

Shared by the bootstrap and the retrain loop, so both publish the same way:

1. **export**: the learner's torch outputs on the held-out and probe stamps must be finite (a
   diverged network is rejected here, before the exporter would refuse it); ``export_onnx``
   writes the model with its parity check into a fresh directory under the work dir;
2. **gate**: the exported graph in onnxruntime against the live version (``gate.evaluate_gate``);
3. **publish**: the learner state goes to Redis first (so every published version can be
   warm-started from), then the directory to the registry as a candidate, which is promoted or
   rejected with the gate's reason. A rejected version stays in the registry, visible in
   ``ahunt models list``.

Nothing is published when the export itself fails: there is no model to show. The outcome then
says why (``non_finite`` or ``parity``) and the run counts as rejected.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import redis

from models.export import ExportParityError, export_onnx
from models.interest import Interest
from models.learner import AhuntLearner
from models.manifest import Manifest
from models.model_dir import read_manifest
from models.preprocess import Preprocessing
from models.session import Outputs, load_session
from services.common.registry import Registry
from services.retrain import storage
from services.retrain.dataset import Examples
from services.retrain.gate import (
    GateResult,
    ModelUnderTest,
    evaluate_gate,
    holdout_metrics,
)
from services.retrain.settings import RetrainSettings
from services.retrain.train import learner_bytes

log = logging.getLogger("ahunt.retrain")

Outcome = Literal["promoted", "rejected", "failed", "skipped"]
PROBE_SIZE = 64


@dataclass(frozen=True)
class RetrainOutcome:
    """What one bootstrap or retrain run did."""

    survey: str
    outcome: Outcome
    reason: str
    version: str | None = None
    parent_version: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    gate: GateResult | None = None
    label_revision: int = 0
    labels_used: int = 0
    losses: tuple[float, ...] = ()

    @property
    def promoted(self) -> bool:
        return self.outcome == "promoted"

    @property
    def rejection_kinds(self) -> list[str]:
        if self.outcome != "rejected":
            return []
        return self.gate.reasons if self.gate is not None else [self.reason.split(":", 1)[0]]


class PhaseTimer:
    """Wall time per phase (dataset, train, export, gate, publish)."""

    def __init__(self) -> None:
        self.durations: dict[str, float] = {}
        self._start = time.perf_counter()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.durations[name] = self.durations.get(name, 0.0) + time.perf_counter() - t0

    def total(self) -> dict[str, float]:
        return {**self.durations, "total": time.perf_counter() - self._start}


def _finite_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if math.isfinite(v)}


@dataclass(frozen=True)
class Published:
    version: str | None
    outcome: Outcome
    reason: str
    gate: GateResult | None
    metrics: dict[str, float]


def publish_candidate(
    client: redis.Redis,
    registry: Registry,
    learner: AhuntLearner,
    *,
    survey: str,
    parent: str | None,
    compare_with: str | None,
    preprocessing: Preprocessing,
    holdout: Examples,
    probe: np.ndarray,
    interests: Mapping[str, Interest],
    settings: RetrainSettings,
    timer: PhaseTimer,
    extra_metrics: Mapping[str, float] | None = None,
    unlabelled_class: str | None = None,
) -> Published:
    """Export, gate and publish ``learner`` as the next version of ``survey`` (module doc).

    ``parent`` is the manifest's lineage; ``compare_with`` the live version the gate compares
    against (None: sanity checks only).
    """
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=settings.work_dir, prefix=f".{survey}-"))
    try:
        with timer.phase("export"):
            version = registry.next_version(survey)
            probe = probe[:PROBE_SIZE]
            torch_out = learner.predict(holdout.x if len(holdout) else probe)
            probe_out = learner.predict(probe) if len(probe) else torch_out
            bad = [
                name
                for name in ("latent", "probs", "novelty")
                if not (
                    np.isfinite(getattr(torch_out, name)).all()
                    and np.isfinite(getattr(probe_out, name)).all()
                )
            ]
            if bad:
                reason = f"non_finite: the trained network gives non-finite {bad}"
                return Published(None, "rejected", reason, None, {})
            metrics = dict(extra_metrics or {})
            if len(holdout):
                outputs = Outputs(torch_out.latent, torch_out.probs, torch_out.novelty)
                metrics.update(
                    holdout_metrics(outputs, learner.classes, holdout.labels, interests, settings)
                )
            parity_inputs = probe if len(probe) else holdout.x[:PROBE_SIZE]
            try:
                export_onnx(
                    learner,
                    work / version,
                    version=version,
                    parent_version=parent,
                    survey=survey,
                    preprocessing=preprocessing,
                    metrics=_finite_metrics(metrics),
                    parity_inputs=parity_inputs if len(parity_inputs) else None,
                    tolerance=settings.parity_tolerance,
                )
            except ExportParityError as exc:
                return Published(None, "rejected", f"parity: {exc}", None, metrics)

        with timer.phase("gate"):
            session, manifest = load_session(work / version)
            current = None
            if compare_with is not None:
                live_dir = registry.fetch(survey, compare_with)
                live_session, live_manifest = load_session(live_dir)
                current = ModelUnderTest(live_session, live_manifest)
            result = evaluate_gate(
                holdout.x,
                holdout.labels,
                ModelUnderTest(session, manifest),
                current,
                interests,
                settings,
                reference_probs=torch_out.probs if len(holdout) else None,
                probe=probe,
                unlabelled_class=unlabelled_class,
            )
        log.info("gate for %s: %s", version, result.summary())

        with timer.phase("publish"):
            # The state first: a published version without one could not be warm-started.
            storage.save_learner_state(client, survey, version, learner_bytes(learner))
            registry.publish(work / version)
            if result.passed:
                registry.promote(survey, version)
                log.info("promoted %s (parent %s)", version, parent)
                return Published(version, "promoted", result.summary(), result, metrics)
            registry.reject(survey, version, result.summary())
            log.warning("rejected %s: %s", version, result.summary())
            return Published(version, "rejected", result.summary(), result, metrics)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def read_live_manifest(registry: Registry, survey: str, version: str) -> Manifest:
    return read_manifest(registry.fetch(survey, version))
