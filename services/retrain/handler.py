"""The retrain service's decisions as pure functions (no Redis, no torch): when a survey is due
and how long to back off after failures. The other pure parts are the held-out split
(``dataset.py``) and the promotion gate (``gate.py``).

A survey is due when ``min_new_labels`` label writes or undos happened since its last completed
attempt (the label revision, ``services.common.labels``), or ``interval_minutes`` passed since
it.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.retrain.settings import RetrainSettings

MAX_BACKOFF_S = 3600.0


@dataclass(frozen=True)
class AttemptState:
    """The last completed attempt of a survey (absent: never; revision 0)."""

    revision: int = 0
    attempted_at: float = 0.0
    version: str | None = None
    outcome: str | None = None
    reason: str = ""


def due(attempt: AttemptState, revision: int, now: float, settings: RetrainSettings) -> str | None:
    """Why a survey should be retrained now, or None (pure).

    >>> s = RetrainSettings(min_new_labels=5, interval_minutes=10)
    >>> due(AttemptState(revision=3, attempted_at=0.0), 8, 60.0, s)
    'labels: 5 new since revision 3'
    >>> due(AttemptState(revision=3, attempted_at=0.0), 7, 60.0, s) is None
    True
    >>> due(AttemptState(revision=3, attempted_at=0.0), 7, 600.0, s)
    'interval: 10 min since the last attempt'
    """
    new = revision - attempt.revision
    if new >= settings.min_new_labels:
        return f"labels: {new} new since revision {attempt.revision}"
    if now - attempt.attempted_at >= settings.interval_minutes * 60.0:
        return f"interval: {settings.interval_minutes:g} min since the last attempt"
    return None


def backoff_s(failures: int, settings: RetrainSettings) -> float:
    """Wait after ``failures`` failed runs in a row: poll_s doubling, at most the interval.

    >>> backoff_s(3, RetrainSettings(poll_s=10, interval_minutes=60))
    40.0
    """
    cap = min(MAX_BACKOFF_S, settings.interval_minutes * 60.0)
    return float(min(cap, settings.poll_s * 2 ** max(failures - 1, 0)))
