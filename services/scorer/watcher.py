"""Keeping each survey's model current, off the hot path: the registry (or a local model
directory) is polled in a background thread, new versions are verified, loaded and warmed up
there, and the scorer picks the new reference up at its next batch (``ModelSlot.swap``)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import redis

from models.model_dir import ModelIntegrityError
from services.common import keys, model_store
from services.common.registry import Registry
from services.scorer.metrics import ScorerMetrics
from services.scorer.model import LoadedModel, ModelSlot, load_model
from services.scorer.settings import ScorerSettings
from services.scorer.warmup import ServingCheck, WarmupSet

# A survey, a loaded version and the live one -> the version to serve, or an exception.
Check = Callable[[str, LoadedModel, LoadedModel | None], LoadedModel]

log = logging.getLogger("ahunt.scorer")


class ModelWatcher:
    """Keeps each survey's model current, loading and warming new versions in this background
    thread; the scorer picks the new reference up at its next batch (``ModelSlot.swap``).

    A survey with a live version in the model registry (Redis) is served from it: the bytes are
    fetched into the local cache and their sha256 checked before anything is loaded, on any host,
    with no shared file system. Other surveys follow ``<model_dir>/<survey>/CURRENT``. The
    registry is polled every ``models_refresh_s`` and its pub/sub announcement wakes the watcher
    early, so a missed message only delays a swap. A version that fails verification or loading is
    refused (metric + log) and the old one stays live; so is one that fails ``check`` on real
    stamps (``warmup.ServingCheck``: outputs, finiteness, speed), promoted by hand or not."""

    def __init__(
        self,
        settings: ScorerSettings,
        slot: ModelSlot,
        metrics: ScorerMetrics,
        registry: Registry | None = None,
        check: Check | None = None,
    ) -> None:
        self.settings, self.slot, self.metrics, self.registry = settings, slot, metrics, registry
        self.check_model = check or ServingCheck(settings, WarmupSet(settings.warmup_alerts))
        self.refused: set[tuple[str, str]] = set()
        self._followed: set[str] = set()  # surveys served from the registry
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)
        self._listener = threading.Thread(target=self._listen, name="model-announce", daemon=True)

    def check(self) -> None:
        followed = self._check_registry() if self.registry is not None else set()
        root = self.settings.model_dir
        for survey in model_store.surveys(root):
            if survey in followed:
                continue
            version = model_store.current_version(root, survey)
            if version is not None:
                self._swap_in(
                    survey, version, partial(model_store.version_dir, root, survey, version)
                )

    def _check_registry(self) -> set[str]:
        """Swap in each survey's live registry version; returns the surveys the registry serves."""
        assert self.registry is not None
        try:
            live = {s: v for s in self.registry.surveys() if (v := self.registry.current(s))}
        except redis.RedisError as exc:  # keep serving; a local CURRENT must not take over
            log.warning("model registry unreachable (%s): keeping the models in use", exc)
            return set(self._followed)
        # A refusal lasts while the version stays live; promoting it again (after restoring its
        # bytes, say) is a fresh attempt.
        self.refused = {(s, v) for s, v in self.refused if live.get(s, v) == v}
        for survey, version in live.items():
            self._swap_in(survey, version, partial(self.registry.fetch, survey, version))
        self._followed = set(live)
        return self._followed

    def _swap_in(self, survey: str, version: str, locate: Callable[[], Path]) -> None:
        live = self.slot.get(survey)
        if (live is not None and live.version == version) or (survey, version) in self.refused:
            return
        providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"] if self.settings.use_cuda else None
        )
        try:
            model = load_model(locate(), threads=self.settings.threads, providers=providers)
            if model.version != version:
                raise ModelIntegrityError(f"{version} holds a model of version {model.version}")
            model = self.check_model(survey, model, live)
        except (redis.RedisError, OSError) as exc:  # transient: try again at the next check
            log.warning("cannot fetch model %s/%s yet: %s", survey, version, exc)
            return
        except Exception as exc:  # a bad model must never go live; keep serving the old one
            log.error("refusing model %s/%s: %s", survey, version, exc)
            self.refused.add((survey, version))
            self.metrics.model_load_failures.labels(survey).inc()
            return
        old = self.slot.swap(survey, model)
        if old is not None:
            # Removed, not set to 0: a series per version ever served would grow without bound.
            self.metrics.model_info.remove(survey, old.version)
        self.metrics.model_info.labels(survey, model.version).set(1)
        self.metrics.model_swaps.labels(survey).inc()
        log.info("model %s now %s (cuda=%s)", survey, model.version, model.uses_cuda)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.models_refresh_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.check()
            except Exception:  # the watcher must outlive a bad moment; the old model stays
                log.exception("model check failed; the models in use stay")

    def _listen(self) -> None:
        """Wake the watcher on each registry announcement (a hint: polling is the guarantee)."""
        assert self.registry is not None
        while not self._stop.is_set():
            pubsub = self.registry.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(keys.MODELS_ANNOUNCE)
                while not self._stop.is_set():
                    if pubsub.get_message(timeout=1.0) is not None:
                        self._wake.set()
            except Exception as exc:  # only a hint is lost: polling carries on
                log.warning("registry announcements lost (%s): polling only for now", exc)
                self._stop.wait(self.settings.models_refresh_s)
            finally:
                with contextlib.suppress(Exception):
                    pubsub.close()

    def start(self) -> None:
        self.check()
        self._thread.start()
        if self.registry is not None:
            self._listener.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in (self._thread, self._listener):
            if thread.is_alive():
                thread.join(timeout_s)


def wait_for_models(slot: ModelSlot, watcher: ModelWatcher, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not slot.versions():
        if time.monotonic() > deadline:
            raise RuntimeError(
                "no model to serve: promote one in the registry (ahunt models) or export one under "
                "the model directory (<model_dir>/<survey>/<version>/ and <survey>/CURRENT)"
            )
        watcher.check()
        time.sleep(0.5)
