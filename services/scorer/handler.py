"""The scorer's pure core: decoded alerts in, per-user deliveries out. No Kafka, no Redis.

For a batch of one survey: stamps are assembled and preprocessed exactly as in training
(``models.preprocess``), the model gives class probabilities and novelty, the reserve column is
mixed with novelty for exploration (``models.interest.exploration_scores``), and every user's
personal score comes from one matrix product with the users' weight matrix. Filters make some
(alert, user) pairs ineligible; the budget selector picks the deliveries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.interest import (
    dismissed_classes,
    dismissed_matrix,
    exploration_scores,
    personal_scores,
    weight_matrix,
)
from models.preprocess import prepare
from services.common.alerts import Alert
from services.common.users import Filters, UserProfile
from services.scorer.model import LoadedModel
from services.scorer.selection import BudgetSelector

MJD_UNIX_EPOCH = 40587.0


@dataclass(frozen=True)
class DeliveryChoice:
    alert: int  # index in the batch
    user: str
    score: float
    reason: str


@dataclass(frozen=True)
class ScoredBatch:
    alerts: Sequence[Alert]
    model_version: str
    classes: list[str]
    stamps: np.ndarray  # preprocessed (N, C, H, W): what training will see for these alerts
    probs: np.ndarray  # (N, K+1)
    novelty: np.ndarray  # (N,)
    scores: np.ndarray  # (N, U) personal scores
    deliveries: list[DeliveryChoice]


def prepare_stamps(alerts: Sequence[Alert], model: LoadedModel) -> np.ndarray:
    """Cutouts -> the model's input (``models.preprocess.prepare``, shared with training), with
    the input spec and preprocessing the model's manifest records."""
    return prepare([a.cutouts for a in alerts], model.spec, model.preprocessing)


def angular_distance_deg(ra1: np.ndarray, dec1: np.ndarray, ra2: float, dec2: float) -> np.ndarray:
    """Great-circle distance in degrees (haversine, stable at small separations).

    >>> round(float(angular_distance_deg(np.array([10.0]), np.array([0.0]), 11.0, 0.0)[0]), 9)
    1.0
    """
    r1, d1 = np.radians(ra1), np.radians(dec1)
    r2, d2 = np.radians(ra2), np.radians(dec2)
    h = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def eligibility(alerts: Sequence[Alert], users: Sequence[UserProfile]) -> np.ndarray:
    """(N, U) bool: which alerts pass each user's filters. An alert missing a filtered field
    (no position for a cone, no magnitude for a magnitude cut) does not pass that filter."""
    n = len(alerts)
    ok = np.ones((n, len(users)), dtype=bool)
    ra = np.array([np.nan if a.ra is None else a.ra for a in alerts], dtype=np.float64)
    dec = np.array([np.nan if a.dec is None else a.dec for a in alerts], dtype=np.float64)
    mag = np.array([np.nan if a.magnitude is None else a.magnitude for a in alerts], np.float64)
    survey = np.array([a.survey for a in alerts])
    for u, profile in enumerate(users):
        f: Filters = profile.filters
        if f == Filters():
            continue
        if f.cone is not None:
            with np.errstate(invalid="ignore"):
                ok[:, u] &= angular_distance_deg(ra, dec, f.cone.ra, f.cone.dec) <= f.cone.radius
        with np.errstate(invalid="ignore"):
            if f.min_magnitude is not None:
                ok[:, u] &= mag >= f.min_magnitude
            if f.max_magnitude is not None:
                ok[:, u] &= mag <= f.max_magnitude
        if f.surveys is not None:
            ok[:, u] &= np.isin(survey, list(f.surveys))
    return ok


def clock_of(alerts: Sequence[Alert], fallback: float) -> float:
    """The batch's event time in unix seconds (latest observation), or ``fallback``."""
    mjds = [a.observed_mjd for a in alerts if a.observed_mjd is not None]
    if not mjds:
        return fallback
    return (max(mjds) - MJD_UNIX_EPOCH) * 86_400.0


def score_batch(
    alerts: Sequence[Alert],
    model: LoadedModel,
    users: Sequence[UserProfile],
    selector: BudgetSelector,
    now: float,
    novelty_mix: float,
    rng: np.random.Generator,
) -> ScoredBatch:
    """Score one survey's alerts for every user and choose the deliveries.

    An alert the model puts in a class the user dismissed (p > 1/2) reaches them by no strategy:
    "not interesting" also closes the exploration shares of their budget to that class."""
    stamps = prepare_stamps(alerts, model)
    out = model.infer(stamps)
    classes = model.classes
    if users:
        interests = [u.interest for u in users]
        weights = weight_matrix(interests, classes)
        dismissed = dismissed_classes(interests, classes)
        scores = personal_scores(
            exploration_scores(out.probs, out.novelty, novelty_mix),
            weights,
            out.probs,
            dismissed_matrix(interests, classes, weights=weights, dismissed=dismissed),
        )
        eligible = eligibility(alerts, users)
        eligible &= out.probs @ dismissed.T <= 0.5
    else:
        scores = np.zeros((len(alerts), 0), np.float32)
        eligible = np.zeros((len(alerts), 0), bool)
    picks = selector.select(scores, now, eligible, rng) if users else []
    deliveries = [
        DeliveryChoice(p.alert, users[p.user].name, float(scores[p.alert, p.user]), p.reason)
        for p in picks
    ]
    return ScoredBatch(
        alerts, model.version, classes, stamps, out.probs, out.novelty, scores, deliveries
    )
