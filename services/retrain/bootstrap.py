"""Version 1 of a survey's model, from alert packets or a labelled set.

The unlabelled alerts become one known class (``--label``, default ``normal``) beside the
reserve, as in AHUNT's pre-training; a labels CSV (``alert_id,class``) gives some alerts other
classes (the demo seeds a few with simulated truth). Stamps are prepared exactly as the scorer
does (``models.preprocess.prepare``, with the preprocessing the manifest records), the latent
detector is fitted on the same pool, and the pool is kept in Redis (``storage.save_pool``) so
every later retrain trains on it again.

The input spec comes from the survey: ZTF's three 63x63 stamps, else the most common stamp size
among the alerts (Rubin's are 30x30 in the sample packets).
"""

from __future__ import annotations

import csv
import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import redis

from models.learner import AhuntLearner, LearnerConfig
from models.preprocess import (
    SURVEY_PREPROCESSING,
    ZTF_SPEC,
    InputSpec,
    Preprocessing,
    prepare,
)
from models.taxonomy import RESERVE, normalise_class_name
from services.common.alerts import Alert, decode_message
from services.common.registry import Registry
from services.common.replay import messages_from_files
from services.retrain import storage
from services.retrain.app import interests_of, locked_run
from services.retrain.candidate import PhaseTimer, RetrainOutcome, publish_candidate
from services.retrain.dataset import Examples, split
from services.retrain.handler import AttemptState
from services.retrain.metrics import RetrainMetrics
from services.retrain.settings import RetrainSettings
from services.retrain.train import fit

log = logging.getLogger("ahunt.retrain")

SURVEY_SPECS: Mapping[str, InputSpec] = {"ztf": ZTF_SPEC}
DEFAULT_LABEL = "normal"


def load_alerts(paths: Iterable[Path], survey: str) -> list[Alert]:
    """Decode every alert of ``survey`` in the files, once per alert id (first wins)."""
    seen: dict[str, Alert] = {}
    rejected = Counter[str]()
    for message in messages_from_files(list(paths)):
        for result in decode_message(message):
            if not isinstance(result, Alert):
                rejected[result.reason] += 1
            elif result.survey == survey:
                seen.setdefault(result.alert_id, result)
    if rejected:
        log.warning("bootstrap: records not decoded: %s", dict(rejected))
    return list(seen.values())


def spec_for(survey: str, alerts: Sequence[Alert]) -> InputSpec:
    """The survey's input: ZTF's fixed stamps, else the most common stamp size (3 channels).

    >>> spec_for("ztf", [])
    InputSpec(channels=3, height=63, width=63)
    """
    if survey in SURVEY_SPECS:
        return SURVEY_SPECS[survey]
    if not alerts:
        raise ValueError(f"no {survey} alerts to take the stamp size from")
    shapes = Counter(tuple(a.cutouts[0].shape) for a in alerts)
    (height, width), _ = shapes.most_common(1)[0]
    return InputSpec(len(alerts[0].cutouts), int(height), int(width))


def read_labels_csv(path: Path) -> dict[str, str]:
    """``alert_id,class`` rows (a header row ``alert_id,...`` is skipped); class names are
    normalised."""
    out: dict[str, str] = {}
    with open(path, newline="") as handle:
        for row in csv.reader(handle):
            if not row or row[0].startswith("#") or row[0].strip() == "alert_id":
                continue
            if len(row) < 2:
                raise ValueError(f"{path}: expected alert_id,class, got {row}")
            out[row[0].strip()] = normalise_class_name(row[1])
    return out


def pool_examples(
    alerts: Sequence[Alert],
    spec: InputSpec,
    preprocessing: Preprocessing,
    labels: Mapping[str, str] | None = None,
    default_label: str = DEFAULT_LABEL,
) -> Examples:
    """The bootstrap pool: every alert, labelled from ``labels`` or else ``default_label``."""
    labels = labels or {}
    default = normalise_class_name(default_label)
    names = tuple(labels.get(a.alert_id, default) for a in alerts)
    if RESERVE in names:
        raise ValueError(f"{RESERVE!r} is never a training label")
    x = prepare([a.cutouts for a in alerts], spec, preprocessing)
    return Examples(tuple(a.alert_id for a in alerts), x, names)


def _classes(examples: Examples, default_label: str) -> list[str]:
    """Class order of v1: the default label first, then the others alphabetically."""
    default = normalise_class_name(default_label)
    others = sorted(set(examples.labels) - {default})
    return ([default] if default in examples.labels else []) + others


def bootstrap(
    settings: RetrainSettings,
    client: redis.Redis,
    registry: Registry,
    survey: str,
    examples: Examples,
    spec: InputSpec,
    preprocessing: Preprocessing = SURVEY_PREPROCESSING,
    *,
    default_label: str = DEFAULT_LABEL,
    force: bool = False,
    metrics: RetrainMetrics | None = None,
) -> RetrainOutcome:
    """Train, publish and (if the gate's sanity checks pass) promote version 1 of ``survey``.

    Refuses (outcome ``skipped``) when the survey already has a live model, unless ``force``;
    a forced bootstrap starts a new lineage (no parent) and is not compared with the live model.
    """

    def run(timer: PhaseTimer) -> RetrainOutcome:
        live = registry.current(survey)
        if live is not None and not force:
            return RetrainOutcome(
                survey, "skipped", f"{survey} already has a live model ({live}): use --force"
            )
        if len(examples) < 2:
            raise ValueError(f"bootstrap needs at least 2 alerts, got {len(examples)}")
        with timer.phase("dataset"):
            data = split(examples, settings.holdout_fraction, settings.min_class_for_holdout)
            storage.save_pool(
                client,
                survey,
                examples,
                spec,
                preprocessing,
                unlabelled_class=normalise_class_name(default_label),
            )
            interests = interests_of(client)
        log.info(
            "%s: bootstrap on %d alerts (%d held out) %s",
            survey,
            len(data.train),
            len(data.holdout),
            data.train.counts(),
        )
        with timer.phase("train"):
            learner = AhuntLearner(
                spec, _classes(examples, default_label), LearnerConfig(), seed=settings.seed
            )
            report = fit(
                learner, data.train.x, data.train.labels, settings.bootstrap_epochs, settings
            )
            learner.fit_detector(data.train.x)
        published = publish_candidate(
            client,
            registry,
            learner,
            survey=survey,
            parent=None,
            compare_with=None,
            preprocessing=preprocessing,
            holdout=data.holdout,
            probe=data.train.x,
            interests=interests,
            settings=settings,
            timer=timer,
            extra_metrics={
                "train_examples": float(len(data.train)),
                "train_loss": report.losses[-1],
            },
        )
        return RetrainOutcome(
            survey,
            published.outcome,
            published.reason,
            version=published.version,
            metrics=published.metrics,
            gate=published.gate,
            losses=report.losses,
        )

    outcome = locked_run(settings, client, survey, run, metrics, trigger_state=False)
    if outcome.outcome in ("promoted", "rejected"):
        # Labels written before the bootstrap are new to it: revision 0 lets them trigger.
        storage.save_attempt(
            client,
            survey,
            AttemptState(0, time.time(), outcome.version, outcome.outcome, outcome.reason),
        )
    return outcome
