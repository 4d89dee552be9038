"""Real stamps every model must score before it serves, and the check it must pass there.

**Where the stamps come from: the scorer's own stream.** Each survey keeps a reservoir of the
cutouts of alerts the live model scored (``WarmupSet``, 64 by default, a random alert of each batch
replacing a random one), saved to Redis every few minutes (``keys.warmup_key``) so that a restarted
or added replica has them before its first alert. Why these and not others:

- they are real and current: the stamps the candidate will score next, with their NaN pixels,
  edge-cut stamps and whatever the survey sends today (zeros or noise exercise none of that);
- they come from neither the model's author nor its training: a model promoted by hand, or
  exported with a warm-up set of its own choosing, is still checked on what the stream holds;
- they are raw cutouts, so each candidate preprocesses them its own way (its manifest's input
  spec and preprocessing), as it will in service;
- they exist exactly when the check matters: a live version to keep means alerts were scored.
  Before any (a new deployment's first model) the set is empty, the model is checked on zeros and
  seeded noise, and the log says so; there is no older version to keep then anyway.

A version is refused (the old one keeps serving) when on these stamps its outputs do not match
its manifest (shapes), hold a NaN or an infinity, or its probabilities do not sum to 1
(``models.checks``, the gate's own checks), or when it is slower per stamp than ``max_slowdown``
times the live version (measured in turns on the same stamps), or slower than
``max_ms_per_alert``. A model that fails on a share of real inputs smaller than about one in the
set's size can pass; each alert it fails on is still that alert's dead letter
(``non_finite_output``), counted, and the batch goes on.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import redis

from models.checks import output_problem, seconds_per_stamp
from models.preprocess import prepare
from services.common import keys
from services.common.alerts import Alert
from services.scorer.model import LoadedModel
from services.scorer.settings import ScorerSettings

log = logging.getLogger("ahunt.scorer")

Cutouts = tuple[np.ndarray, np.ndarray, np.ndarray]
_SYNTHETIC = 8  # zeros and noise stamps each, when no real stamp was seen yet


class ModelRefused(ValueError):
    """A model that must not serve: what it did wrong on the warm-up stamps."""


class WarmupSet:
    """Per survey, the cutouts of up to ``size`` recent real alerts (thread-safe: the scorer adds,
    the model watcher reads)."""

    def __init__(self, size: int = 64, seed: int = 0) -> None:
        self.size = size
        self.rng = np.random.default_rng(seed)
        self._sets: dict[str, list[Cutouts]] = {}
        self._changed: set[str] = set()
        self._lock = threading.Lock()

    def offer(self, survey: str, alerts: Sequence[Alert]) -> None:
        """Take alerts of a scored batch: fill the set first, then one random alert of each batch
        replaces a random one (the set follows the stream at a batch's pace)."""
        if not alerts:
            return
        rng = self.rng
        with self._lock:
            held = self._sets.setdefault(survey, [])
            room = self.size - len(held)
            if room > 0:
                picks = rng.permutation(len(alerts))[:room]
                held.extend(alerts[int(i)].cutouts for i in picks)
            else:
                held[int(rng.integers(len(held)))] = alerts[int(rng.integers(len(alerts)))].cutouts
            self._changed.add(survey)

    def get(self, survey: str) -> list[Cutouts]:
        with self._lock:
            return list(self._sets.get(survey, ()))

    def surveys(self) -> list[str]:
        with self._lock:
            return sorted(self._sets)

    def take_changed(self) -> list[str]:
        """The surveys whose set changed since the last call."""
        with self._lock:
            changed, self._changed = sorted(self._changed), set()
            return changed

    def dumps(self, survey: str) -> bytes:
        """One survey's set as ``.npz`` bytes (no pickles)."""
        arrays = {
            f"a{i}_{k}": c
            for i, cutouts in enumerate(self.get(survey))
            for k, c in enumerate(cutouts)
        }
        out = io.BytesIO()
        np.savez(out, allow_pickle=False, **arrays)
        return out.getvalue()

    def loads(self, survey: str, data: bytes) -> int:
        """Fill an empty set from :meth:`dumps` bytes (a set already filled keeps its own);
        returns how many alerts it holds."""
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            count = len({name.split("_")[0] for name in npz.files})
            loaded = [(npz[f"a{i}_0"], npz[f"a{i}_1"], npz[f"a{i}_2"]) for i in range(count)][
                : self.size
            ]
        with self._lock:
            if not self._sets.get(survey):
                self._sets[survey] = loaded
            return len(self._sets[survey])


def _synthetic(model: LoadedModel) -> np.ndarray:
    rng = np.random.default_rng(0)
    shape = (_SYNTHETIC, *model.spec.shape)
    return np.concatenate([np.zeros(shape, np.float32), rng.normal(size=shape).astype(np.float32)])


def check_outputs(
    model: LoadedModel,
    warmup: Sequence[Cutouts],
    live: LoadedModel | None,
    max_slowdown: float,
    max_ms_per_alert: float,
    threads: int = 1,
) -> LoadedModel:
    """``model`` with its probe stamps if it may serve, else :class:`ModelRefused` saying why
    (module docstring). ``live`` is the version it would replace (None: the first); ``threads``
    the sessions' intra-op threads (one: timed in CPU time, ``models.checks.seconds_per_stamp``).
    """
    if warmup:
        x = prepare(warmup, model.spec, model.preprocessing)
    else:
        log.warning(
            "model %s checked on synthetic stamps only: no real alert of its survey seen yet",
            model.version,
        )
        x = _synthetic(model)
    try:
        outputs = model.infer(x)
    except Exception as exc:
        raise ModelRefused(f"it does not run on {len(x)} warm-up stamps: {exc}") from exc
    problem = output_problem(outputs, len(x), model.manifest)
    if problem:
        raise ModelRefused(f"on {len(x)} warm-up stamps: {problem}")
    sessions = [model.session]
    if live is not None and live.spec.shape == model.spec.shape:  # timed in turns on the same x
        sessions.append(live.session)
    cpu = not (model.uses_cuda or (live is not None and live.uses_cuda)) and threads == 1
    timings = seconds_per_stamp(sessions, x, cpu=cpu)
    ms = timings[0] * 1e3
    if max_ms_per_alert and ms > max_ms_per_alert:
        raise ModelRefused(f"{ms:.3g} ms per stamp, over the budget of {max_ms_per_alert:g} ms")
    if len(timings) == 2:
        ratio = timings[0] / max(timings[1], 1e-9)
        if ratio > max_slowdown:
            raise ModelRefused(
                f"{ms:.3g} ms per stamp, {ratio:.2g}x the live version's "
                f"({timings[1] * 1e3:.3g} ms), over the allowed {max_slowdown:g}x"
            )
    return replace(model, probe=x)


class ServingCheck:
    """The scorer's load check as the model watcher calls it: a survey, the loaded version and
    the live one (None: the first) in; the version to serve (with its probe stamps) out, or
    :class:`ModelRefused`. A survey's empty set is first filled from Redis (what another
    replica, or this one before a restart, saved)."""

    def __init__(
        self, settings: ScorerSettings, warmup: WarmupSet, client: redis.Redis | None = None
    ) -> None:
        self.settings, self.warmup, self.client = settings, warmup, client

    def __call__(self, survey: str, model: LoadedModel, live: LoadedModel | None) -> LoadedModel:
        if not self.warmup.get(survey) and self.client is not None:
            try:
                data = self.client.get(keys.warmup_key(survey))
            except redis.RedisError as exc:
                log.warning("warm-up stamps of %s not readable (%s)", survey, exc)
                data = None
            if isinstance(data, bytes):
                try:
                    self.warmup.loads(survey, data)
                except (ValueError, OSError, KeyError) as exc:  # not what dumps wrote: ignore it
                    log.warning("warm-up stamps of %s in Redis unreadable (%s)", survey, exc)
        return check_outputs(
            model,
            self.warmup.get(survey),
            live,
            self.settings.max_slowdown,
            self.settings.max_ms_per_alert,
            self.settings.threads,
        )
