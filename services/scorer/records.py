"""What the scorer writes, built from a scored batch (pure: no Kafka, no Redis): the Avro record
of a delivery on the user's topic (``schemas/user_alert.v1.avsc``), the metadata of an alert in
the feedback cache, and the delivery record the feedback API shows."""

from __future__ import annotations

from typing import Any

from services.scorer.handler import MJD_UNIX_EPOCH, DeliveryChoice, ScoredBatch


def user_alert_record(
    batch: ScoredBatch, d: DeliveryChoice, scored_at: float, published_at: float
) -> dict[str, Any]:
    """The ``user_alert.v1`` record of delivery ``d`` (times in unix seconds)."""
    a = batch.alerts[d.alert]
    return {
        "alert_id": a.alert_id,
        "object_id": a.object_id,
        "survey": a.survey,
        "user": d.user,
        "score": d.score,
        "reason": d.reason,
        "class_probabilities": {
            c: float(p) for c, p in zip(batch.classes, batch.probs[d.alert], strict=True)
        },
        "novelty": float(batch.novelty[d.alert]),
        "model_version": batch.model_version,
        "ra": a.ra,
        "dec": a.dec,
        "magnitude": a.magnitude,
        "alert_time": None
        if a.observed_mjd is None
        else int((a.observed_mjd - MJD_UNIX_EPOCH) * 86_400_000),
        "scored_at": int(scored_at * 1000),
        "published_at": int(published_at * 1000),
        "cutout_science": a.cutout_bytes[0],
        "cutout_template": a.cutout_bytes[1],
        "cutout_difference": a.cutout_bytes[2],
    }


def cache_meta(batch: ScoredBatch, i: int, cached_at: float, background: bool) -> dict[str, Any]:
    """The feedback cache's metadata of alert ``i`` (``background``: cached as a sample of the
    stream, not because it was delivered)."""
    a = batch.alerts[i]
    return {
        "alert_id": a.alert_id,
        "object_id": a.object_id,
        "survey": a.survey,
        "schema_version": a.schema_version,
        "ra": a.ra,
        "dec": a.dec,
        "magnitude": a.magnitude,
        "observed_mjd": a.observed_mjd,
        "model_version": batch.model_version,
        "classes": batch.classes,
        "probs": [float(p) for p in batch.probs[i]],
        "novelty": float(batch.novelty[i]),
        "cached_at": cached_at,
        "background": background,
    }


def delivery_record(batch: ScoredBatch, d: DeliveryChoice, delivered_at: float) -> dict[str, Any]:
    """What the feedback API keeps of delivery ``d`` (its score, strategy and model version)."""
    return {
        "score": d.score,
        "reason": d.reason,
        "model_version": batch.model_version,
        "delivered_at": delivered_at,
    }
