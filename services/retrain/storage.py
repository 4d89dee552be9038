"""The retrain service's Redis reads and writes (labels themselves are
``services.common.labels``'; key names: ``services.common.keys``).

- the bootstrap pool of a survey: a hash of ``meta`` JSON (ids, labels, input spec,
  preprocessing, time) and ``chunk:<i>`` float32 .npy stamps (<= 1,024 each), which every
  retrain trains on again;
- each version's torch learner state (``AhuntLearner.state`` saved with ``torch.save``), what the
  next retrain warm-starts from; written before the version is published, so every published
  version has one;
- the last completed attempt of a survey (label revision, time, version, outcome, reason): the
  loop's trigger state; and a lock: one retrain per survey at a time.

Stamps are read with pipelines: one round trip per 500 labels, not one per label.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis
from redis.typing import EncodableT, FieldT

from models.preprocess import InputSpec, Preprocessing
from models.taxonomy import RESERVE, normalise_class_name
from services.common import keys
from services.common import labels as label_store
from services.common.values import data, stamp_bytes, stamp_from_bytes, text
from services.retrain.dataset import Examples
from services.retrain.handler import AttemptState

POOL_CHUNK = 1024
READ_BATCH = 500


# -- the bootstrap pool ------------------------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    examples: Examples
    spec: InputSpec
    preprocessing: Preprocessing
    created_at: float
    # The class given to the alerts nobody labelled (``--label``): a name, not knowledge, so the
    # gate does not hold a candidate to it (None for pools saved before it was recorded).
    unlabelled_class: str | None = None


def save_pool(
    client: redis.Redis,
    survey: str,
    examples: Examples,
    spec: InputSpec,
    preprocessing: Preprocessing,
    unlabelled_class: str | None = None,
) -> None:
    """Replace the survey's bootstrap pool (one transaction: readers see old or new)."""
    meta = {
        "unlabelled_class": unlabelled_class,
        "ids": list(examples.ids),
        "labels": list(examples.labels),
        "spec": spec.to_dict(),
        "preprocessing": preprocessing.to_dict(),
        "created_at": time.time(),
    }
    mapping: dict[FieldT, EncodableT] = {"meta": json.dumps(meta)}
    for i, start in enumerate(range(0, len(examples), POOL_CHUNK)):
        mapping[f"chunk:{i}"] = stamp_bytes(examples.x[start : start + POOL_CHUNK])
    pipe = client.pipeline(transaction=True)
    pipe.delete(keys.bootstrap_key(survey))
    pipe.hset(keys.bootstrap_key(survey), mapping=mapping)
    pipe.execute()


def load_pool(client: redis.Redis, survey: str) -> Pool | None:
    raw = client.hgetall(keys.bootstrap_key(survey))
    if not raw:
        return None
    meta = json.loads(raw[b"meta"])
    spec = InputSpec.from_dict(meta["spec"])
    chunks = [stamp_from_bytes(raw[f"chunk:{i}".encode()]) for i in range(len(raw) - 1)]
    x = np.concatenate(chunks) if chunks else np.zeros((0, *spec.shape), np.float32)
    examples = Examples(tuple(meta["ids"]), x, tuple(meta["labels"]))
    return Pool(
        examples,
        spec,
        Preprocessing.from_dict(meta["preprocessing"]),
        float(meta["created_at"]),
        meta.get("unlabelled_class"),
    )


# -- durable labels ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledSet:
    examples: Examples
    skipped: dict[str, int]  # reason -> count (no stamp, wrong shape, reserve label)


def durable_examples(client: redis.Redis, survey: str, spec: InputSpec) -> LabelledSet:
    """Every durable label of ``survey``, resolved to one class per alert, with its stamp."""
    records = [r for r in label_store.all_labels(client) if r.survey == survey]
    resolved = label_store.resolve_training_labels(records)
    skipped = {"no_stamp": 0, "wrong_shape": 0, "reserve_label": 0}
    ids: list[str] = []
    stamps: list[np.ndarray] = []
    names: list[str] = []
    items = sorted(resolved.items())
    for start in range(0, len(items), READ_BATCH):
        batch = items[start : start + READ_BATCH]
        pipe = client.pipeline(transaction=False)
        for alert_id, _ in batch:
            pipe.hget(keys.train_key(alert_id), "stamp")
        for (alert_id, label), raw in zip(batch, pipe.execute(), strict=True):
            if normalise_class_name(label) == RESERVE:
                skipped["reserve_label"] += 1
                continue
            if raw is None:
                skipped["no_stamp"] += 1
                continue
            stamp = stamp_from_bytes(raw)
            if tuple(stamp.shape) != spec.shape:
                skipped["wrong_shape"] += 1
                continue
            ids.append(alert_id)
            stamps.append(stamp)
            names.append(label)
    x = np.stack(stamps).astype(np.float32) if stamps else np.zeros((0, *spec.shape), np.float32)
    return LabelledSet(Examples(tuple(ids), x, tuple(names)), skipped)


def recent_stamps(client: redis.Redis, survey: str, spec: InputSpec, limit: int) -> np.ndarray:
    """Up to ``limit`` stamps of ``survey`` from the scorer's feedback cache (recent alerts,
    delivered or sampled as background): unlabelled data for the latent detector."""
    out: list[np.ndarray] = []
    if limit <= 0:
        return np.zeros((0, *spec.shape), np.float32)
    cached = client.scan_iter(match=keys.alert_key("*"), count=READ_BATCH)
    for batch in _chunks(cached, READ_BATCH):
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.hmget(key, ["meta", "stamp"])
        for meta_raw, stamp_raw in pipe.execute():
            if meta_raw is None or stamp_raw is None:
                continue  # expired between the scan and the read
            if json.loads(meta_raw).get("survey") != survey:
                continue
            stamp = stamp_from_bytes(stamp_raw)
            if tuple(stamp.shape) == spec.shape:
                out.append(stamp)
                if len(out) >= limit:
                    return np.stack(out).astype(np.float32)
    return np.stack(out).astype(np.float32) if out else np.zeros((0, *spec.shape), np.float32)


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- learner states ----------------------------------------------------------------------------


def save_learner_state(client: redis.Redis, survey: str, version: str, state: bytes) -> None:
    client.set(keys.learner_key(survey, version), state)


def delete_learner_state(client: redis.Redis, survey: str, version: str) -> None:
    client.delete(keys.learner_key(survey, version))


def load_learner_state(client: redis.Redis, survey: str, version: str) -> bytes | None:
    return data(client.get(keys.learner_key(survey, version)))


# -- trigger state -----------------------------------------------------------------------------


def load_attempt(client: redis.Redis, survey: str) -> AttemptState:
    raw = client.hgetall(keys.retrain_state_key(survey))
    if not raw:
        return AttemptState()
    fields = {str(text(k)): str(text(v)) for k, v in raw.items()}
    return AttemptState(
        revision=int(fields.get("revision", 0)),
        attempted_at=float(fields.get("attempted_at", 0.0)),
        version=fields.get("version") or None,
        outcome=fields.get("outcome") or None,
        reason=fields.get("reason", ""),
    )


def save_attempt(client: redis.Redis, survey: str, state: AttemptState) -> None:
    client.hset(
        keys.retrain_state_key(survey),
        mapping={
            "revision": state.revision,
            "attempted_at": state.attempted_at,
            "version": state.version or "",
            "outcome": state.outcome or "",
            "reason": state.reason,
        },
    )
