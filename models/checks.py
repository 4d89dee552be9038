"""What a served model's outputs must look like, and how fast it is: one implementation for the
retrain gate (``services.retrain.gate``) and the scorer's own load check
(``services.scorer.warmup``), so a model the gate would refuse is refused by the scorer too, even
when someone promotes it by hand.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from models.manifest import OUTPUT_NAMES, Manifest
from models.session import Outputs, run_session

__all__ = [
    "PROBS_SUM_TOLERANCE",
    "non_finite_outputs",
    "output_problem",
    "seconds_per_stamp",
    "shape_problem",
]

# How far a row of probabilities may sum from 1 (float32 softmax rounding is ~1e-7).
PROBS_SUM_TOLERANCE = 1e-3


def shape_problem(outputs: Outputs, n: int, manifest: Manifest) -> str | None:
    """What differs between the outputs' shapes on ``n`` stamps and the manifest's, or None."""
    latent_shape = manifest.outputs.get("latent", {}).get("shape", [None, None])
    expected = {
        "latent": (n, latent_shape[1]),
        "probs": (n, len(manifest.classes)),
        "novelty": (n,),
    }
    for name, want in expected.items():
        got = np.shape(getattr(outputs, name))
        if tuple(got) != want:
            return f"{name} has shape {tuple(got)}, manifest says {want}"
    return None


def non_finite_outputs(outputs: Outputs) -> list[str]:
    """The names of the outputs that hold a NaN or an infinity."""
    return [n for n in OUTPUT_NAMES if not np.isfinite(getattr(outputs, n)).all()]


def output_problem(outputs: Outputs, n: int, manifest: Manifest) -> str | None:
    """The first thing wrong with a model's outputs on ``n`` stamps (shapes, then non-finite
    values, then probability rows that do not sum to 1), or None."""
    problem = shape_problem(outputs, n, manifest)
    if problem:
        return problem
    bad = non_finite_outputs(outputs)
    if bad:
        rows = ~np.isfinite(np.column_stack([outputs.probs, outputs.novelty])).all(axis=1)
        return f"non-finite values in {bad} for {int(rows.sum())} of {n} stamps"
    worst = float(np.max(np.abs(outputs.probs.sum(axis=1) - 1.0))) if n else 0.0
    if worst > PROBS_SUM_TOLERANCE:
        return f"probability rows sum to 1 +- {worst:.3g}"
    return None


def seconds_per_stamp(
    sessions: list[Any], x: np.ndarray, repeats: int = 3, *, cpu: bool = True
) -> list[float]:
    """Seconds per stamp of each session on ``x``: after one untimed run each (first runs
    allocate), the best of ``repeats`` runs, the sessions taking turns in every round.

    ``cpu``: time with this thread's CPU time, not the wall clock. A CPU session with one
    intra-op thread (the scorer's and the gate's) computes in the calling thread, so its CPU time
    is its cost whatever else the machine runs (measured on a loaded 2-core box: 9.1-9.7 ms of
    CPU per 64 stamps while the wall clock said 15-21 ms). For a GPU or multi-threaded session,
    pass ``cpu=False``: the wall clock, taken in turns, is then the fairest measure. Raises what
    a session raises."""
    clock = time.thread_time if cpu else time.perf_counter
    for session in sessions:
        run_session(session, x)
    best = [float("inf")] * len(sessions)
    for _ in range(repeats):
        for i, session in enumerate(sessions):
            started = clock()
            run_session(session, x)
            best[i] = min(best[i], (clock() - started) / max(len(x), 1))
    return best
