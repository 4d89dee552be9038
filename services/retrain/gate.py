"""The promotion gate: a pure function over held-out arrays and two onnxruntime sessions.

A candidate is promoted only if every check passes:

- ``output_shape``: the graph runs and gives latent (N, D), probs (N, len(classes)) and
  novelty (N,) as its manifest says;
- ``non_finite``: every output is finite;
- ``invalid_probs``: probability rows sum to 1;
- ``parity``: the export's measured torch/onnxruntime difference, and (when given) the torch
  probabilities on the held-out stamps against the ONNX ones, are within tolerance;
- ``recall``: per labelled class, the candidate's held-out recall is not below the live model's
  by more than ``recall_tolerance + slack_examples / n``;
- ``pool``: the bootstrap pool's class of unlabelled alerts (``unlabelled_class``, e.g. "normal")
  is nobody's judgement and holds every kind of alert, so it is not held to a recall: a model
  that learns kinds from users' labels rightly calls much of the pool by them (on real sky, where
  the pool is variable stars, asteroids and bogus detections alike, every good retrain did). Two
  failures are still caught on the held-out pool: a collapse (``pool_collapse_share`` or more of
  it called by one other class) and a flood (more than ``pool_wanted_share`` of it called by
  classes users want, so the users' ranking no longer separates anything). Either passes where
  the live model was already as far. The pool's examples take no part in the interest AUROC;
- ``latency``: the candidate's seconds per stamp on the held-out and probe stamps is at most
  ``max_slowdown`` times the live model's, measured in turns on the same stamps
  (``models.checks.seconds_per_stamp``), so the ratio holds on a busy machine; the scorer checks
  the same ratio on real stamps before it serves a version (``services.scorer.warmup``);
- ``interest_auroc``: per user, the AUROC of the personal score (computed as the scorer does)
  for "the label is a class the user weighs > 0" is not below the live model's by more than
  ``auroc_tolerance + slack_examples / min(positives, negatives)``.

Small data is handled by skipping, never by guessing: a class with fewer than
``min_holdout_per_class`` held-out examples, a class the live model does not know (a new class
cannot be compared), a user without interest or with too few positives or negatives, or no live
model at all: that check is recorded as ``skip`` with the reason. The ``slack_examples / n`` term
is one held-out example's worth of noise: a single flipped example never rejects a candidate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sklearn.metrics import roc_auc_score

from models.checks import PROBS_SUM_TOLERANCE, seconds_per_stamp, shape_problem
from models.interest import Interest, exploration_scores, personal_scores, weight_vector
from models.manifest import OUTPUT_NAMES, Manifest
from models.session import Outputs, run_session
from models.taxonomy import RESERVE
from services.retrain.settings import GateConfig

Status = Literal["pass", "fail", "skip"]
# Check kinds: stable strings, used as the ``reason`` label of the rejection metric.
KINDS = (
    "output_shape",
    "non_finite",
    "invalid_probs",
    "parity",
    "latency",
    "recall",
    "pool",
    "interest_auroc",
)


@dataclass(frozen=True)
class Check:
    kind: str
    subject: str  # class or user name, "" for whole-model checks
    status: Status
    detail: str
    candidate: float | None = None
    current: float | None = None

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.subject}" if self.subject else self.kind


@dataclass(frozen=True)
class GateResult:
    checks: tuple[Check, ...]
    metrics: dict[str, float] = field(default_factory=dict)  # the candidate's held-out metrics

    @property
    def passed(self) -> bool:
        return not any(c.status == "fail" for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def reasons(self) -> list[str]:
        """The kinds of the failed checks, each once, in check order."""
        return list(dict.fromkeys(c.kind for c in self.failures))

    @property
    def skipped(self) -> list[Check]:
        return [c for c in self.checks if c.status == "skip"]

    def summary(self) -> str:
        """One line: the failures, else the passes and what could not be compared."""
        if self.failures:
            return "; ".join(f"{c.name}: {c.detail}" for c in self.failures)
        passed = sum(c.status == "pass" for c in self.checks)
        skips = "; ".join(f"{c.name}: {c.detail}" for c in self.skipped)
        return f"passed {passed} checks" + (f"; skipped {skips}" if skips else "")


@dataclass(frozen=True)
class ModelUnderTest:
    session: Any  # onnxruntime.InferenceSession
    manifest: Manifest


def run_model(session: Any, x: np.ndarray) -> Outputs:
    """The three outputs of ``session`` on ``x`` (at least one row: an empty batch is padded,
    so even a model with nothing held out is run and checked)."""
    return run_session(session, x if len(x) else np.zeros((1, *x.shape[1:]), np.float32))


def recall_per_class(
    probs: np.ndarray, classes: Sequence[str], labels: Sequence[str]
) -> dict[str, float]:
    """Share of each labelled class's examples whose top output (reserve included) is that class.

    >>> p = np.array([[0.1, 0.9, 0.0], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    >>> recall_per_class(p, ["reserve", "a", "b"], ["a", "b", "a"])
    {'a': 0.5, 'b': 1.0}
    """
    top = np.asarray(probs).argmax(axis=1)
    index = {c: i for i, c in enumerate(classes)}
    labels_arr = np.asarray(labels)
    out: dict[str, float] = {}
    for name in sorted(set(labels)):
        rows = labels_arr == name
        out[name] = float((top[rows] == index[name]).mean()) if name in index else 0.0
    return out


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (scikit-learn's, as the benchmark uses; ties count half). Needs
    both kinds present.

    >>> auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True]))
    0.75
    >>> auroc(np.array([1.0, 1.0]), np.array([True, False]))
    0.5
    """
    pos = np.asarray(positive, dtype=bool)
    if pos.all() or not pos.any():
        raise ValueError("AUROC needs positives and negatives")
    return float(roc_auc_score(pos, np.asarray(scores, dtype=np.float64)))


def interest_scores(
    outputs: Outputs, classes: Sequence[str], interest: Interest, novelty_mix: float
) -> np.ndarray:
    """One user's personal scores exactly as the scorer computes them (reserve mixed with
    novelty, then the user's normalised weights)."""
    weights = weight_vector(interest, classes).astype(np.float32)[None, :]
    return personal_scores(
        exploration_scores(outputs.probs, outputs.novelty, novelty_mix), weights
    )[:, 0]


def interested_in(interest: Interest) -> set[str]:
    return {c for c, w in interest.weights.items() if w > 0 and c != RESERVE}


def holdout_metrics(
    outputs: Outputs,
    classes: Sequence[str],
    labels: Sequence[str],
    interests: Mapping[str, Interest],
    config: GateConfig,
) -> dict[str, float]:
    """A model's held-out metrics (recall per class, interest AUROC per user where defined)."""
    metrics: dict[str, float] = {"holdout_examples": float(len(labels))}
    if not len(labels):
        return metrics
    for name, value in recall_per_class(outputs.probs, classes, labels).items():
        metrics[f"recall/{name}"] = value
    labels_arr = np.asarray(labels)
    for user, interest in sorted(interests.items()):
        positive = np.isin(labels_arr, sorted(interested_in(interest)))
        if positive.any() and (~positive).any():
            scores = interest_scores(outputs, classes, interest, config.novelty_mix)
            metrics[f"auroc/{user}"] = auroc(scores, positive)
    return metrics


def _sanity(
    model: ModelUnderTest, x: np.ndarray, config: GateConfig
) -> tuple[list[Check], Outputs | None]:
    """Run the model; shape, finiteness and probability checks. Outputs are None on failure."""
    try:
        outputs = run_model(model.session, x)
    except Exception as exc:  # a graph that cannot run on the model's own input is rejected
        return [Check("output_shape", "", "fail", f"the model does not run: {exc}")], None
    problem = shape_problem(outputs, max(len(x), 1), model.manifest)
    if problem:
        return [Check("output_shape", "", "fail", problem)], None
    checks = [Check("output_shape", "", "pass", "outputs match the manifest")]
    bad = [n for n in OUTPUT_NAMES if not np.isfinite(getattr(outputs, n)).all()]
    if bad:
        return [*checks, Check("non_finite", "", "fail", f"non-finite values in {bad}")], None
    checks.append(Check("non_finite", "", "pass", "all outputs finite"))
    worst = float(np.max(np.abs(outputs.probs.sum(axis=1) - 1.0)))
    if worst > PROBS_SUM_TOLERANCE:
        return [
            *checks,
            Check("invalid_probs", "", "fail", f"probability rows sum to 1 +- {worst:.3g}"),
        ], None
    checks.append(Check("invalid_probs", "", "pass", "probability rows sum to 1"))
    return checks, outputs


def _parity_checks(
    candidate: ModelUnderTest, outputs: Outputs, reference_probs: np.ndarray | None, tol: float
) -> list[Check]:
    checks = []
    diff = candidate.manifest.parity_max_abs_diff
    if diff > tol:
        checks.append(
            Check("parity", "export", "fail", f"export parity {diff:.3g} > {tol:.3g}", diff)
        )
    else:
        checks.append(Check("parity", "export", "pass", f"export parity {diff:.3g}", diff))
    if reference_probs is not None:
        ref = np.asarray(reference_probs)
        if ref.shape != outputs.probs.shape:
            checks.append(
                Check(
                    "parity",
                    "holdout",
                    "fail",
                    f"torch probs {ref.shape} vs onnx {outputs.probs.shape}",
                )
            )
        else:
            d = float(np.max(np.abs(ref - outputs.probs))) if ref.size else 0.0
            status: Status = "pass" if d <= tol else "fail"
            checks.append(Check("parity", "holdout", status, f"held-out max abs diff {d:.3g}", d))
    return checks


def _latency_check(
    candidate: ModelUnderTest, current: ModelUnderTest, x: np.ndarray, config: GateConfig
) -> Check:
    cand_s, live_s = seconds_per_stamp([candidate.session, current.session], x)
    ratio = cand_s / max(live_s, 1e-9)
    detail = (
        f"{cand_s * 1e3:.3g} ms per stamp vs live {live_s * 1e3:.3g} ms "
        f"({ratio:.2g}x, at most {config.max_slowdown:g}x)"
    )
    status: Status = "fail" if ratio > config.max_slowdown else "pass"
    return Check("latency", "", status, detail, cand_s, live_s)


def _allowed_drop(tolerance: float, slack: float, n: int) -> float:
    return tolerance + slack / n


def _recall_checks(
    cand: Outputs,
    cand_classes: Sequence[str],
    cur: Outputs,
    cur_classes: Sequence[str],
    labels: Sequence[str],
    config: GateConfig,
    unlabelled_class: str | None = None,
) -> list[Check]:
    checks = []
    cand_recall = recall_per_class(cand.probs, cand_classes, labels)
    cur_recall = recall_per_class(cur.probs, cur_classes, labels)
    counts = {c: labels.count(c) for c in cand_recall}
    for name in sorted(cand_recall):
        if name == unlabelled_class and name in cand_classes and name in cur_classes:
            continue  # not a judgement: ``pool_checks``
        n = counts[name]
        a, b = cand_recall[name], cur_recall[name]
        if name not in cand_classes and name not in cur_classes:
            checks.append(Check("recall", name, "skip", "no model knows it (all held out)"))
        elif name not in cand_classes:
            checks.append(Check("recall", name, "fail", "the candidate lost this class", a, b))
        elif name not in cur_classes:
            checks.append(Check("recall", name, "skip", "new class: the live model lacks it", a))
        elif n < config.min_holdout_per_class:
            checks.append(
                Check(
                    "recall", name, "skip", f"{n} held-out < {config.min_holdout_per_class}", a, b
                )
            )
        else:
            allowed = _allowed_drop(config.recall_tolerance, config.slack_examples, n)
            status: Status = "fail" if a < b - allowed else "pass"
            detail = f"recall {a:.3f} vs live {b:.3f} (n={n}, allowed drop {allowed:.3f})"
            checks.append(Check("recall", name, status, detail, a, b))
    return checks


def _top_names(outputs: Outputs, classes: Sequence[str]) -> np.ndarray:
    return np.asarray(classes)[np.asarray(outputs.probs).argmax(axis=1)]


def pool_checks(
    cand: Outputs,
    cand_classes: Sequence[str],
    cur: Outputs,
    cur_classes: Sequence[str],
    labels: Sequence[str],
    interests: Mapping[str, Interest],
    config: GateConfig,
    pool_class: str,
) -> list[Check]:
    """Collapse and flood on the held-out bootstrap pool (see the module docstring)."""
    rows = np.asarray(labels) == pool_class
    n = int(rows.sum())
    if n < config.min_holdout_per_class:
        why = f"{n} held-out < {config.min_holdout_per_class}"
        return [Check("pool", pool_class, "skip", why)]
    cand_top = _top_names(cand, cand_classes)[rows]
    cur_top = _top_names(cur, cur_classes)[rows]
    slack = config.slack_examples / n
    checks = []

    names, counts = np.unique(cand_top[cand_top != pool_class], return_counts=True)
    if len(names):
        i = int(counts.argmax())
        top, a = str(names[i]), float(counts[i] / n)
        b = float((cur_top == top).mean())
        collapsed = a >= config.pool_collapse_share and a > b + slack
        detail = (
            f"{a:.0%} of the pool called {top!r} (live {b:.0%}, n={n}, "
            f"collapse at {config.pool_collapse_share:.0%})"
        )
        checks.append(Check("pool", pool_class, "fail" if collapsed else "pass", detail, a, b))

    wanted = sorted(set().union(*(interested_in(i) for i in interests.values())))
    if wanted:
        a = float(np.isin(cand_top, wanted).mean())
        b = float(np.isin(cur_top, wanted).mean())
        flooded = a > config.pool_wanted_share and a > b + slack
        detail = (
            f"{a:.0%} of the pool called a wanted class (live {b:.0%}, n={n}, "
            f"flood above {config.pool_wanted_share:.0%})"
        )
        checks.append(Check("pool", pool_class, "fail" if flooded else "pass", detail, a, b))
    return checks


def _auroc_checks(
    cand: Outputs,
    cand_classes: Sequence[str],
    cur: Outputs,
    cur_classes: Sequence[str],
    labels: Sequence[str],
    interests: Mapping[str, Interest],
    config: GateConfig,
    unlabelled_class: str | None = None,
) -> list[Check]:
    checks = []
    labels_arr = np.asarray(labels)
    if unlabelled_class is not None:  # users' own labels only: the pool's name is no answer
        keep = labels_arr != unlabelled_class
        cand, cur = cand.take(keep), cur.take(keep)
        labels_arr = labels_arr[keep]
    for user, interest in sorted(interests.items()):
        wanted = interested_in(interest)
        if not wanted:
            checks.append(Check("interest_auroc", user, "skip", "no class of interest yet"))
            continue
        positive = np.isin(labels_arr, sorted(wanted))
        n_pos, n_neg = int(positive.sum()), int((~positive).sum())
        need = config.min_auroc_examples
        if n_pos < need or n_neg < need:
            checks.append(
                Check(
                    "interest_auroc",
                    user,
                    "skip",
                    f"{n_pos} positives / {n_neg} negatives < {need}",
                )
            )
            continue
        a = auroc(interest_scores(cand, cand_classes, interest, config.novelty_mix), positive)
        b = auroc(interest_scores(cur, cur_classes, interest, config.novelty_mix), positive)
        allowed = _allowed_drop(config.auroc_tolerance, config.slack_examples, min(n_pos, n_neg))
        status: Status = "fail" if a < b - allowed else "pass"
        detail = f"AUROC {a:.3f} vs live {b:.3f} ({n_pos}+/{n_neg}-, allowed drop {allowed:.3f})"
        checks.append(Check("interest_auroc", user, status, detail, a, b))
    return checks


def evaluate_gate(
    x: np.ndarray,
    labels: Sequence[str],
    candidate: ModelUnderTest,
    current: ModelUnderTest | None,
    interests: Mapping[str, Interest],
    config: GateConfig,
    *,
    reference_probs: np.ndarray | None = None,
    probe: np.ndarray | None = None,
    unlabelled_class: str | None = None,
) -> GateResult:
    """Decide whether ``candidate`` may replace ``current`` (see the module docstring).

    ``x``/``labels`` are the held-out stamps and class names; ``reference_probs`` the torch
    probabilities of the candidate on ``x``; ``probe`` extra stamps (e.g. training ones) used
    only for the output checks, so a model is checked even with nothing held out.
    """
    labels = list(labels)
    if len(x) != len(labels):
        raise ValueError(f"{len(x)} held-out stamps but {len(labels)} labels")
    inputs = x if probe is None or not len(probe) else np.concatenate([x, probe])
    checks, outputs_all = _sanity(candidate, inputs, config)
    if outputs_all is None:
        return GateResult(tuple(checks))
    cand = outputs_all.take(slice(0, len(x)))
    checks += _parity_checks(
        candidate, cand, reference_probs if len(x) else None, config.parity_tolerance
    )
    cand_classes = candidate.manifest.classes
    metrics = holdout_metrics(cand, cand_classes, labels, interests, config)

    def skip_all(why: str) -> GateResult:
        return GateResult((*checks, Check("recall", "", "skip", why)), metrics)

    if not labels:
        return skip_all("nothing held out")
    if current is None:
        return skip_all("no live model to compare with")
    if current.manifest.input_spec != candidate.manifest.input_spec:
        return skip_all("the live model has another input spec")
    try:
        cur = run_model(current.session, x)
    except Exception as exc:  # the live model failing here is not the candidate's fault
        return skip_all(f"the live model does not run: {exc}")
    if not all(np.isfinite(getattr(cur, n)).all() for n in OUTPUT_NAMES):
        return skip_all("the live model gives non-finite outputs")
    checks.append(_latency_check(candidate, current, inputs, config))
    cur_classes = current.manifest.classes
    checks += _recall_checks(cand, cand_classes, cur, cur_classes, labels, config, unlabelled_class)
    if unlabelled_class is not None:
        checks += pool_checks(
            cand, cand_classes, cur, cur_classes, labels, interests, config, unlabelled_class
        )
    checks += _auroc_checks(
        cand, cand_classes, cur, cur_classes, labels, interests, config, unlabelled_class
    )
    return GateResult(tuple(checks), metrics)
