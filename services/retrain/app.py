"""The retrain service: the loop and its wiring. When a survey is due (``handler.due``), build
the training set, warm-start from the live version, fine-tune, then export, gate and publish
(``candidate.publish_candidate``).

A timed run with no new label is counted as ``skipped``. A rejected candidate moves the trigger
state on like a promoted one, so a candidate the gate refused is not retrained on the same
labels again and again. A failed run (an exception: Redis, the registry, a bug) leaves the
trigger state alone and is retried with exponential back-off (``handler.backoff_s``).

One retrain per survey at a time, across processes: a Redis lock with a TTL.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import redis
from redis.exceptions import LockError

from models.interest import Interest
from models.learner import AhuntLearner, LearnerConfig
from models.preprocess import InputSpec, Preprocessing
from services.common import keys
from services.common import labels as label_store
from services.common.registry import Registry
from services.common.store import load_profiles
from services.retrain import storage
from services.retrain.candidate import (
    PhaseTimer,
    RetrainOutcome,
    publish_candidate,
    read_live_manifest,
)
from services.retrain.dataset import Examples, concat, split
from services.retrain.handler import AttemptState, backoff_s, due
from services.retrain.metrics import RetrainMetrics
from services.retrain.settings import RetrainSettings
from services.retrain.train import fit, learner_from_bytes

log = logging.getLogger("ahunt.retrain")


def interests_of(client: redis.Redis) -> dict[str, Interest]:
    return {p.name: p.interest for p in load_profiles(client)}


@dataclass(frozen=True)
class _Data:
    train: Examples
    holdout: Examples
    detector_x: np.ndarray
    labels_used: int
    unlabelled_class: str | None


def _dataset(
    client: redis.Redis, survey: str, spec: InputSpec, settings: RetrainSettings
) -> _Data | None:
    pool = storage.load_pool(client, survey)
    parts = []
    if pool is not None:
        if pool.spec == spec:
            parts.append(pool.examples)
        else:
            log.warning(
                "%s: bootstrap pool has input %s, the live model %s: pool not used",
                survey,
                pool.spec.shape,
                spec.shape,
            )
    labelled = storage.durable_examples(client, survey, spec)
    if any(labelled.skipped.values()):
        log.warning("%s: labels not usable: %s", survey, labelled.skipped)
    parts.append(labelled.examples)
    if not any(len(p) for p in parts):
        return None
    data = split(concat(parts), settings.holdout_fraction, settings.min_class_for_holdout)
    if not len(data.train):
        return None
    recent = storage.recent_stamps(client, survey, spec, settings.detector_recent_max)
    detector_x = np.concatenate([data.train.x, recent]) if len(recent) else data.train.x
    unlabelled = pool.unlabelled_class if pool is not None else None
    return _Data(data.train, data.holdout, detector_x, len(labelled.examples), unlabelled)


def _warm_start(
    client: redis.Redis,
    survey: str,
    live: str,
    classes: list[str],
    config: LearnerConfig,
    spec: InputSpec,
    settings: RetrainSettings,
) -> tuple[AhuntLearner, int]:
    """The live version's learner and the epochs to train it, or a fresh one (and the
    bootstrap's epochs) when no state was stored for it (e.g. a model published by hand)."""
    state = storage.load_learner_state(client, survey, live)
    if state is not None:
        return learner_from_bytes(state), settings.finetune_epochs
    log.warning("%s: no learner state for %s: training from scratch", survey, live)
    return AhuntLearner(spec, classes[1:], config, seed=settings.seed), settings.bootstrap_epochs


def _retrain(
    settings: RetrainSettings,
    client: redis.Redis,
    registry: Registry,
    survey: str,
    timer: PhaseTimer,
) -> RetrainOutcome:
    with timer.phase("dataset"):
        revision = label_store.revision(client)  # read first: later labels count next time
        live = registry.current(survey)
        if live is None:
            return RetrainOutcome(
                survey,
                "skipped",
                "no live model: run `ahunt bootstrap` first",
                label_revision=revision,
            )
        manifest = read_live_manifest(registry, survey, live)
        spec = InputSpec.from_dict(manifest.input_spec)
        data = _dataset(client, survey, spec, settings)
        if data is None:
            return RetrainOutcome(
                survey, "skipped", "no training data", parent_version=live, label_revision=revision
            )
        interests = interests_of(client)
    log.info(
        "%s: retraining %s on %d examples (%d held out, %d durable labels) %s",
        survey,
        live,
        len(data.train),
        len(data.holdout),
        data.labels_used,
        data.train.counts(),
    )

    with timer.phase("train"):
        learner, epochs = _warm_start(
            client,
            survey,
            live,
            manifest.classes,
            LearnerConfig.from_dict(manifest.learner_config),
            spec,
            settings,
        )
        report = fit(learner, data.train.x, data.train.labels, epochs, settings)
        learner.fit_detector(data.detector_x)

    extra = {
        "label_revision": float(revision),
        "train_examples": float(len(data.train)),
        "train_loss": report.losses[-1],
    }
    published = publish_candidate(
        client,
        registry,
        learner,
        survey=survey,
        parent=live,
        compare_with=live,
        preprocessing=Preprocessing.from_dict(manifest.preprocessing),
        holdout=data.holdout,
        probe=data.train.x,
        interests=interests,
        settings=settings,
        timer=timer,
        extra_metrics=extra,
        unlabelled_class=data.unlabelled_class,
    )
    if settings.keep_versions:  # the registry would otherwise grow by one model per run
        for old in registry.prune(survey, settings.keep_versions):
            storage.delete_learner_state(client, survey, old)
    return RetrainOutcome(
        survey,
        published.outcome,
        published.reason,
        version=published.version,
        parent_version=live,
        metrics=published.metrics,
        gate=published.gate,
        label_revision=revision,
        labels_used=data.labels_used,
        losses=report.losses,
    )


def record(outcome: RetrainOutcome, metrics: RetrainMetrics | None) -> None:
    """Count a run in the metrics (the one place that does)."""
    if metrics is None:
        return
    s = outcome.survey
    metrics.runs.labels(s, outcome.outcome).inc()
    for phase, seconds in outcome.durations.items():
        metrics.duration.labels(s, phase).observe(seconds)
    for kind in outcome.rejection_kinds:
        metrics.gate_rejections.labels(s, kind).inc()
    if outcome.outcome in ("promoted", "rejected"):
        metrics.labels.labels(s).set(outcome.labels_used)
        metrics.last_success.labels(s).set(time.time())
        metrics.consecutive_failures.labels(s).set(0)
    elif outcome.outcome == "failed":
        metrics.consecutive_failures.labels(s).inc()


def locked_run(
    settings: RetrainSettings,
    client: redis.Redis,
    survey: str,
    run: Callable[[PhaseTimer], RetrainOutcome],
    metrics: RetrainMetrics | None,
    trigger_state: bool = True,
) -> RetrainOutcome:
    """Run ``run`` under the survey's lock, turning exceptions into a ``failed`` outcome,
    timing it, counting it and (for completed runs) saving the trigger state."""
    timer = PhaseTimer()
    lock = client.lock(keys.retrain_lock_key(survey), timeout=settings.lock_ttl_s)
    ran = lock.acquire(blocking=False)
    if not ran:
        outcome = RetrainOutcome(survey, "skipped", "another retrain of this survey is running")
    else:
        try:
            outcome = run(timer)
        except Exception as exc:  # a failed run is reported and retried, never half-published
            log.exception("%s: retrain failed", survey)
            outcome = RetrainOutcome(survey, "failed", f"{type(exc).__name__}: {exc}")
        finally:
            try:
                lock.release()
            except LockError:  # expired meanwhile (a run longer than lock_ttl_s)
                log.warning("%s: the retrain lock expired before the run ended", survey)
    outcome = replace(outcome, durations=timer.total())
    if ran and trigger_state and outcome.outcome != "failed":
        attempt = AttemptState(
            outcome.label_revision, time.time(), outcome.version, outcome.outcome, outcome.reason
        )
        storage.save_attempt(client, survey, attempt)
    record(outcome, metrics)
    log.info(
        "%s: %s %s (%s) in %.1f s",
        survey,
        outcome.outcome,
        outcome.version or "-",
        outcome.reason,
        outcome.durations["total"],
    )
    return outcome


def _nothing_new(survey: str, revision: int) -> Callable[[PhaseTimer], RetrainOutcome]:
    def run(_timer: PhaseTimer) -> RetrainOutcome:
        return RetrainOutcome(survey, "skipped", "no new labels", label_revision=revision)

    return run


def retrain_once(
    settings: RetrainSettings,
    client: redis.Redis,
    registry: Registry,
    survey: str,
    metrics: RetrainMetrics | None = None,
) -> RetrainOutcome:
    """One retrain of ``survey`` now (the ``--now`` path and the loop's step)."""
    return locked_run(
        settings, client, survey, lambda t: _retrain(settings, client, registry, survey, t), metrics
    )


class RetrainLoop:
    """Checks every survey and retrains the due ones; :meth:`step` is one pass (tests call it),
    :meth:`run` repeats it every ``poll_s`` until ``stop`` is set."""

    def __init__(
        self,
        settings: RetrainSettings,
        client: redis.Redis,
        registry: Registry,
        metrics: RetrainMetrics | None = None,
    ) -> None:
        self.settings, self.client, self.registry, self.metrics = (
            settings,
            client,
            registry,
            metrics,
        )
        self.failures: dict[str, int] = {}
        self.retry_at: dict[str, float] = {}
        if metrics is not None:  # series exist from the start, so dashboards and rules see 0
            for survey in settings.surveys:
                metrics.consecutive_failures.labels(survey).set(0)

    def step(self, now: float | None = None) -> list[RetrainOutcome]:
        outcomes = []
        for survey in self.settings.surveys:
            t = time.time() if now is None else now
            if t < self.retry_at.get(survey, 0.0):
                continue
            attempt = storage.load_attempt(self.client, survey)
            revision = label_store.revision(self.client)
            why = due(attempt, revision, t, self.settings)
            if why is None:
                continue
            if why.startswith("interval") and revision == attempt.revision:
                # Time is up but nothing changed: nothing to learn from. Counted, not trained.
                run = _nothing_new(survey, revision)
                outcome = locked_run(self.settings, self.client, survey, run, self.metrics)
            else:
                log.info("%s: due (%s)", survey, why)
                outcome = retrain_once(
                    self.settings, self.client, self.registry, survey, self.metrics
                )
            if outcome.outcome == "failed":
                self.failures[survey] = self.failures.get(survey, 0) + 1
                wait = backoff_s(self.failures[survey], self.settings)
                self.retry_at[survey] = time.time() + wait
            else:
                self.failures.pop(survey, None)
            outcomes.append(outcome)
        return outcomes

    def run(
        self,
        stop: threading.Event,
        on_outcome: Callable[[RetrainOutcome], None] | None = None,
    ) -> None:
        while not stop.is_set():
            for outcome in self.step():
                if on_outcome is not None:
                    on_outcome(outcome)
            stop.wait(self.settings.poll_s)
