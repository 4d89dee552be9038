"""The feedback API's decisions as pure functions: no Redis, Kafka or HTTP here.

What an answer does to a profile, the audit event a label becomes, counts and pages of labels,
the view of an alert, and which cached candidates make good questions.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from models.interest import answer
from services.common.cutouts import CutoutError, decode_stamp
from services.common.labels import LabelRecord
from services.common.png import triplet_png
from services.common.users import UserProfile

EVENT_SCHEMA = "feedback_event.v1"
EventKind = Literal["label", "undo"]


def apply_answer(profile: UserProfile, label: str, interesting: bool | None) -> UserProfile | None:
    """The profile after this answer, or ``None`` if the answer changes nothing (the common case,
    which lets the write skip the optimistic lock on the profiles hash).

    >>> p = UserProfile(name="a")
    >>> apply_answer(p, "lens", True).weights
    {'lens': 1.0}
    >>> apply_answer(p, "lens", None) is None
    True
    >>> apply_answer(UserProfile(name="a", weights={"lens": 0.0}), "lens", False) is None
    True
    """
    interest = answer(profile.interest, label, interesting)
    if dict(interest.weights) == profile.weights:
        return None
    return profile.model_copy(update={"weights": dict(interest.weights)})


def feedback_event(
    kind: EventKind, record: LabelRecord, *, event_id: str | None = None, at: float | None = None
) -> dict[str, Any]:
    """The audit event of a label or an undo (schema ``schemas/feedback_event.v1.avsc``).

    >>> r = LabelRecord(user="a", alert_id="7", label="SN", labelled_at=1.5)
    >>> e = feedback_event("label", r, event_id="e1", at=2.0)
    >>> (e["kind"], e["label"], e["labelled_at"], e["event_time"])
    ('label', 'sn', 1500, 2000)
    """
    return {
        "event_id": event_id or uuid.uuid4().hex,
        "kind": kind,
        "user": record.user,
        "alert_id": record.alert_id,
        "label": record.label,
        "interesting": record.interesting,
        "comment": record.comment,
        "survey": record.survey,
        "model_version": record.model_version,
        "labelled_at": int(record.labelled_at * 1000),
        "event_time": int((time.time() if at is None else at) * 1000),
    }


def label_counts(records: Iterable[LabelRecord]) -> dict[str, int]:
    """Labels per class, most used first, ties by name.

    >>> rs = [LabelRecord(user="a", alert_id=str(i), label=c) for i, c in enumerate("bab")]
    >>> label_counts(rs)
    {'b': 2, 'a': 1}
    """
    counts = Counter(r.label for r in records)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass(frozen=True)
class Page:
    items: list[LabelRecord]
    total: int
    next_offset: int | None


def page_labels(records: Sequence[LabelRecord], label: str | None, limit: int, offset: int) -> Page:
    """Newest first, optionally one class only.

    >>> rs = [LabelRecord(user="a", alert_id=str(i), label="x", labelled_at=i) for i in range(5)]
    >>> p = page_labels(rs, None, 2, 0)
    >>> [r.alert_id for r in p.items], p.total, p.next_offset
    (['4', '3'], 5, 2)
    >>> page_labels(rs, "y", 2, 0).total
    0
    """
    chosen = [r for r in records if label is None or r.label == label]
    chosen.sort(key=lambda r: (r.labelled_at, r.alert_id), reverse=True)
    items = chosen[offset : offset + limit]
    end = offset + len(items)
    return Page(items, len(chosen), end if end < len(chosen) else None)


def class_probabilities(meta: Mapping[str, Any]) -> dict[str, float]:
    classes, probs = meta.get("classes") or [], meta.get("probs") or []
    return {str(c): _finite(p) for c, p in zip(classes, probs, strict=False)}


def _finite(x: Any) -> float:
    """JSON cannot carry NaN: unknown numbers become 0.0 in views (never in stored data)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return 0.0
    return v if math.isfinite(v) else 0.0


def optional_number(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def alert_view(
    alert_id: str, delivery: Mapping[str, Any], meta: Mapping[str, Any] | None
) -> dict[str, Any]:
    """What ``GET /v1/alerts/{id}`` shows: the delivery record plus the cached metadata."""
    meta = meta or {}
    return {
        "alert_id": alert_id,
        "score": _finite(delivery.get("score")),
        "reason": str(delivery.get("reason", "")),
        "delivered_at": optional_number(delivery.get("delivered_at")),
        "model_version": delivery.get("model_version") or meta.get("model_version"),
        "object_id": meta.get("object_id"),
        "survey": meta.get("survey"),
        "ra": optional_number(meta.get("ra")),
        "dec": optional_number(meta.get("dec")),
        "magnitude": optional_number(meta.get("magnitude")),
        "observed_mjd": optional_number(meta.get("observed_mjd")),
        "class_probabilities": class_probabilities(meta),
        "novelty": optional_number(meta.get("novelty")),
        "cached": bool(meta),
    }


def newest_models(metas: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per survey, the version and classes of the most recently cached alert's model.

    >>> newest_models([{"survey": "ztf", "model_version": "1", "classes": ["reserve"],
    ...                 "cached_at": 1}, {"survey": "ztf", "model_version": "2",
    ...                 "classes": ["reserve", "sn"], "cached_at": 2}])
    {'ztf': {'version': '2', 'classes': ['reserve', 'sn']}}
    """
    best: dict[str, tuple[float, dict[str, Any]]] = {}
    for m in metas:
        survey, at = str(m.get("survey", "")), _finite(m.get("cached_at"))
        if survey and (survey not in best or at > best[survey][0]):
            view = {"version": m.get("model_version"), "classes": list(m.get("classes") or [])}
            best[survey] = (at, view)
    return {s: v for s, (_, v) in sorted(best.items())}


def cutouts_png(originals: Sequence[bytes | None], stamp: np.ndarray | None) -> bytes | None:
    """The three original cutouts side by side (a stamp that does not decode shows black), or,
    once the cache expired, the training set's preprocessed channels; ``None`` if neither."""
    if any(o is not None for o in originals):
        images: list[np.ndarray | None] = []
        for o in originals:
            try:
                images.append(decode_stamp(o))
            except CutoutError:
                images.append(None)
        shape = next((i.shape for i in images if i is not None), (63, 63))
        return triplet_png([np.full(shape, np.nan) if i is None else i for i in images])
    if stamp is not None:
        channels = [stamp] if stamp.ndim == 2 else list(stamp)
        return triplet_png(channels)
    return None
