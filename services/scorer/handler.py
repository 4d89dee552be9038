"""The scorer's pure core: decoded alerts in, per-user deliveries out. No Kafka, no Redis.

For a batch of one survey: stamps are assembled and preprocessed exactly as in training
(``models.preprocess``), the model gives class probabilities and novelty, the reserve column is
mixed with novelty for exploration (``models.interest.exploration_scores``), and every user's
personal score comes from one matrix product with the users' weight matrix. Filters make some
(alert, user) pairs ineligible; the budget selector picks the deliveries.

One bad alert fails only itself: if preprocessing or the model raises on a batch, each alert is
tried alone and those that still raise are refused (``scoring_failed``); an alert whose outputs
hold a NaN or an infinity is refused (``non_finite_output``); the others are scored and selected
as if the refused ones had never come. Only when no alert of the batch scores *and* the model
fails on its own probe stamps (real ones, checked at load) is the model to blame: that raises,
and the batch replays once a working model is live.
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
from models.session import Outputs
from services.common.alerts import Alert
from services.common.users import Filters, UserProfile
from services.scorer.model import LoadedModel
from services.scorer.selection import BudgetSelector

MJD_UNIX_EPOCH = 40587.0
#: Why the scorer refuses an alert it decoded (dead-letter reasons, metric labels).
REFUSAL_REASONS = {
    "scoring_failed": "preprocessing or the model raised on this alert alone",
    "non_finite_output": "the model gave a NaN or an infinity for this alert",
    "encoding_failed": "its record for a user's topic could not be encoded",
    "no_model_for_survey": "no model is live for the alert's survey",
}


@dataclass(frozen=True)
class DeliveryChoice:
    alert: int  # index in the batch
    user: str
    score: float
    reason: str


@dataclass(frozen=True)
class Refusal:
    """An alert of the batch (``alert``: its index in what was given) that was not scored."""

    alert: int
    reason: str  # a key of REFUSAL_REASONS
    error: str


@dataclass(frozen=True)
class ScoredBatch:
    """The alerts that scored (``rows``: their indexes in what was given) and the refusals."""

    alerts: Sequence[Alert]
    model_version: str
    classes: list[str]
    stamps: np.ndarray  # preprocessed (N, C, H, W): what training will see for these alerts
    probs: np.ndarray  # (N, K+1)
    novelty: np.ndarray  # (N,)
    scores: np.ndarray  # (N, U) personal scores
    deliveries: list[DeliveryChoice]
    rows: np.ndarray
    refused: list[Refusal]


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


@dataclass(frozen=True)
class UserTables:
    """What scoring needs of the users that does not depend on the alerts: computed once per
    list of users and model classes, not per batch (with 100 users it was ~3 ms of every
    batch, a quarter of the CPU per alert at the small batches of a 250 alerts/s stream)."""

    weights: np.ndarray  # (U, K+1) weight_matrix
    dismissed: np.ndarray  # (U, K+1) dismissed_classes
    dismissed_weights: np.ndarray  # (U, K+1) dismissed_matrix
    filtered: tuple[int, ...]  # the users with any filter (eligibility skips the others)


_TABLES: list[tuple[tuple[UserProfile, ...], tuple[str, ...], UserTables]] = []
_TABLES_KEPT = 4  # a few surveys' class lists at once


def user_tables(users: Sequence[UserProfile], classes: Sequence[str]) -> UserTables:
    """:class:`UserTables` of ``users``, cached by the profiles' identity: the scorer replaces
    its list of (frozen) profiles whenever one changes, so a new list is recomputed, and the
    cache holds the profiles it was computed from, so their ids cannot be reused meanwhile."""
    key_users, key_classes = tuple(users), tuple(classes)
    for cached_users, cached_classes, tables in _TABLES:
        if (
            cached_classes == key_classes
            and len(cached_users) == len(key_users)
            and all(a is b for a, b in zip(cached_users, key_users, strict=True))
        ):
            return tables
    interests = [u.interest for u in users]
    weights = weight_matrix(interests, classes)
    dismissed = dismissed_classes(interests, classes)
    no_filter = Filters()
    tables = UserTables(
        weights,
        dismissed,
        dismissed_matrix(interests, classes, weights=weights, dismissed=dismissed),
        tuple(u for u, profile in enumerate(users) if profile.filters != no_filter),
    )
    _TABLES.insert(0, (key_users, key_classes, tables))
    del _TABLES[_TABLES_KEPT:]
    return tables


def eligibility(
    alerts: Sequence[Alert],
    users: Sequence[UserProfile],
    filtered: Sequence[int] | None = None,
) -> np.ndarray:
    """(N, U) bool: which alerts pass each user's filters. An alert missing a filtered field
    (no position for a cone, no magnitude for a magnitude cut) does not pass that filter.
    ``filtered``: the users that have filters, when the caller knows (the others pass all)."""
    n = len(alerts)
    ok = np.ones((n, len(users)), dtype=bool)
    if filtered is not None and not filtered:
        return ok
    ra = np.array([np.nan if a.ra is None else a.ra for a in alerts], dtype=np.float64)
    dec = np.array([np.nan if a.dec is None else a.dec for a in alerts], dtype=np.float64)
    mag = np.array([np.nan if a.magnitude is None else a.magnitude for a in alerts], np.float64)
    survey = np.array([a.survey for a in alerts])
    no_filter = Filters()
    for u in range(len(users)) if filtered is None else filtered:
        f: Filters = users[u].filters
        if f == no_filter:
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


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def _model_outputs(
    alerts: Sequence[Alert], model: LoadedModel
) -> tuple[np.ndarray, np.ndarray, Outputs, list[Refusal]]:
    """Rows that ran, their stamps and outputs, and the refusals (module docstring)."""
    try:
        stamps = prepare_stamps(alerts, model)
        return np.arange(len(alerts)), stamps, model.infer(stamps), []
    except Exception as whole:
        ran: list[tuple[int, np.ndarray, Outputs]] = []
        refused: list[Refusal] = []
        for i, alert in enumerate(alerts):
            try:
                one = prepare_stamps([alert], model)
                ran.append((i, one, model.infer(one)))
            except Exception as exc:
                refused.append(Refusal(i, "scoring_failed", _describe(exc)))
        if not ran and not _model_runs(model):
            raise whole
        if not ran:
            return (
                np.zeros(0, np.int64),
                np.zeros((0, *model.spec.shape), np.float32),
                _none(model),
                refused,
            )
        rows = np.array([i for i, _, _ in ran])
        outs = [o for _, _, o in ran]
        joined = Outputs(*(np.concatenate([getattr(o, f) for o in outs]) for f in _FIELDS))
        return rows, np.concatenate([s for _, s, _ in ran]), joined, refused


_FIELDS = ("latent", "probs", "novelty")


def _none(model: LoadedModel) -> Outputs:
    return Outputs(
        np.zeros((0, 0), np.float32),
        np.zeros((0, len(model.classes)), np.float32),
        np.zeros(0, np.float32),
    )


def _model_runs(model: LoadedModel) -> bool:
    """Whether the model still scores its probe stamps (the real ones it was checked on)."""
    probe = model.probe if model.probe is not None else np.zeros((1, *model.spec.shape), np.float32)
    try:
        model.infer(probe[:8])
    except Exception:
        return False
    return True


def score_batch(
    alerts: Sequence[Alert],
    model: LoadedModel,
    users: Sequence[UserProfile],
    selector: BudgetSelector,
    now: float,
    novelty_mix: float,
    rng: np.random.Generator,
) -> ScoredBatch:
    """Score one survey's alerts for every user and choose the deliveries; alerts that cannot be
    scored are refused one by one (module docstring).

    An alert the model puts in a class the user dismissed (p > 1/2) reaches them by no strategy:
    "not interesting" also closes the exploration shares of their budget to that class."""
    rows, stamps, out, refused = _model_outputs(alerts, model)
    finite = np.isfinite(out.probs).all(axis=1) & np.isfinite(out.novelty)
    finite &= np.isfinite(out.latent).all(axis=1)
    if not finite.all():
        refused += [
            Refusal(int(i), "non_finite_output", f"model {model.version} gave NaN or inf")
            for i in rows[~finite]
        ]
        rows, stamps, out = rows[finite], stamps[finite], out.take(finite)
    kept = [alerts[int(i)] for i in rows]
    classes = model.classes
    if users and kept:
        tables = user_tables(users, classes)
        scores = personal_scores(
            exploration_scores(out.probs, out.novelty, novelty_mix),
            tables.weights,
            out.probs,
            tables.dismissed_weights,
        )
        eligible = eligibility(kept, users, tables.filtered)
        eligible &= out.probs @ tables.dismissed.T <= 0.5
    else:
        scores = np.zeros((len(kept), len(users)), np.float32)
        eligible = np.zeros((len(kept), len(users)), bool)
    picks = selector.select(scores, now, eligible, rng) if users and kept else []
    deliveries = [
        DeliveryChoice(p.alert, users[p.user].name, float(scores[p.alert, p.user]), p.reason)
        for p in picks
    ]
    return ScoredBatch(
        kept,
        model.version,
        classes,
        stamps,
        out.probs,
        out.novelty,
        scores,
        deliveries,
        rows,
        sorted(refused, key=lambda r: r.alert),
    )
