"""The :class:`Registry`: publish, reject, promote, roll back and prune model versions, each one
MULTI/EXEC transaction under WATCH (see the package docstring), read records and history, and
fetch a version to disk through :mod:`services.common.registry.cache`."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import redis
from prometheus_client import Gauge

from models.manifest import Manifest
from models.model_dir import ModelIntegrityError, verify_model_dir
from services.common import keys
from services.common.registry import cache
from services.common.registry.records import (
    RECORD_FIELDS,
    SIGNATURE_FIELD,
    ModelRecord,
    RegistryError,
    parse_version,
    record_from,
    survey_of,
)
from services.common.signing import ModelKeys
from services.common.values import text

log = logging.getLogger("ahunt.registry")

_WATCH_RETRIES = 50
_T = TypeVar("_T")


def _owned_key(survey: str, version: str) -> str:
    """``model_key`` after checking that ``version`` is a version of ``survey``."""
    if survey_of(version) != survey:
        raise RegistryError(f"{version} is not a version of survey {survey!r}")
    return keys.model_key(survey, version)


class Registry:
    """Publish, promote, reject, roll back and fetch model versions (see the module docstring).

    ``client`` must return bytes (``decode_responses=False``, as ``store.connect`` gives);
    ``cache_dir`` is where :meth:`fetch` materialises versions (``<survey>/<version>/``).
    ``keys`` sign what :meth:`publish` uploads and verify what :meth:`promote`, :meth:`rollback`
    and :meth:`fetch` accept (default: the public development key, ``services.common.signing``):
    verification is never off, so an unsigned or forged version cannot reach a session.
    """

    def __init__(self, client: redis.Redis, cache_dir: Path, keys: ModelKeys | None = None) -> None:
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("the registry needs a Redis client with decode_responses=False")
        self.client = client
        self.cache_dir = Path(cache_dir)
        self.keys = keys or ModelKeys.development()

    # -- transactions --------------------------------------------------------------------------

    def _execute(self, pipe: redis.client.Pipeline) -> list[Any]:
        """Send the queued MULTI/EXEC (the one place a state change reaches Redis; tests override
        it to inject a failure between deciding and executing)."""
        result: list[Any] = pipe.execute()
        return result

    def _transaction(self, watch: list[str], body: Callable[[redis.client.Pipeline], _T]) -> _T:
        """Run ``body(pipe)`` under WATCH ``watch``; ``body`` reads in immediate mode, then calls
        ``pipe.multi()`` and queues writes. Retried when a watched key changed meanwhile."""
        for _ in range(_WATCH_RETRIES):
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(*watch)
                    result = body(pipe)
                    self._execute(pipe)
                    return result
                except redis.WatchError:
                    continue
        raise RegistryError(f"too much contention on {watch} (gave up after {_WATCH_RETRIES})")

    # -- writes --------------------------------------------------------------------------------

    def publish(self, model_dir: Path) -> ModelRecord:
        """Verify ``model_dir`` and upload it as a ``candidate``; returns its record.

        The survey is the manifest's ``survey`` (else the version's prefix). Versions are
        immutable: publishing an existing version again returns its record if the bytes are the
        same (a retried publish) and raises :class:`RegistryError` if they differ.
        """
        model_dir = Path(model_dir)
        manifest = verify_model_dir(model_dir)
        prefix, number = parse_version(manifest.version)
        survey = manifest.survey or prefix
        if survey != prefix:
            raise RegistryError(f"version {manifest.version} does not belong to survey {survey}")
        data = (model_dir / manifest.model_file).read_bytes()
        if hashlib.sha256(data).hexdigest() != manifest.sha256:  # changed since verification
            raise ModelIntegrityError(f"{model_dir}: model file changed while publishing")
        key = keys.model_key(survey, manifest.version)
        now = time.time()

        def body(pipe: redis.client.Pipeline) -> None:
            existing = pipe.hget(key, "sha256")
            if existing is not None:
                pipe.unwatch()
                if text(existing) != manifest.sha256:
                    raise RegistryError(
                        f"{manifest.version} is already published with other bytes "
                        f"(sha256 {text(existing)}); versions are immutable"
                    )
                return None
            pipe.multi()
            pipe.hset(
                key,
                mapping={
                    "onnx": data,
                    "manifest": manifest.to_json(),
                    "sha256": manifest.sha256,
                    SIGNATURE_FIELD: self.keys.sign(manifest.to_json(), manifest.sha256),
                    "size": len(data),
                    "status": "candidate",
                    "reason": "",
                    "created_at": repr(now),
                    "promoted_at": "",
                },
            )
            pipe.zadd(keys.model_versions_key(survey), {manifest.version: number})
            pipe.sadd(keys.MODEL_SURVEYS, survey)
            return None

        self._transaction([key], body)
        record = self.record(survey, manifest.version)
        assert record is not None
        log.info("published %s (%d bytes, sha256 %s)", manifest.version, record.size, record.sha256)
        return record

    def reject(self, survey: str, version: str, reason: str) -> None:
        """Mark a version ``rejected`` (it can never be promoted). The live version cannot be
        rejected: roll back first."""
        key = _owned_key(survey, version)

        def body(pipe: redis.client.Pipeline) -> None:
            status = text(pipe.hget(key, "status"))
            if status is None:
                raise RegistryError(f"unknown model version {survey}/{version}")
            if status == "live":
                raise RegistryError(f"{version} is live: roll back before rejecting it")
            pipe.multi()
            pipe.hset(key, mapping={"status": "rejected", "reason": reason})

        self._transaction([key], body)
        log.info("rejected %s: %s", version, reason)

    def promote(self, survey: str, version: str) -> None:
        """Make ``version`` live: status, pointer and history change in one transaction, and the
        change is announced. Promoting the live version is a no-op; a rejected one raises."""
        key = _owned_key(survey, version)
        pointer = keys.model_live_key(survey)

        def body(pipe: redis.client.Pipeline) -> bool:
            status = text(pipe.hget(key, "status"))
            if status is None:
                raise RegistryError(f"unknown model version {survey}/{version}")
            if status == "rejected":
                reason = text(pipe.hget(key, "reason"))
                raise RegistryError(f"{version} was rejected ({reason}): it cannot be promoted")
            self._check_signature(pipe, survey, version)
            old = text(pipe.get(pointer))
            if old == version:
                pipe.unwatch()
                return False
            pipe.multi()
            if old is not None:
                pipe.hset(keys.model_key(survey, old), mapping={"status": "retired", "reason": ""})
            pipe.hset(
                key, mapping={"status": "live", "reason": "", "promoted_at": repr(time.time())}
            )
            pipe.set(pointer, version)
            pipe.rpush(keys.model_history_key(survey), version)
            self._announce(pipe, survey, version, "promote", old)
            return True

        # Watching the old version's key too would need its name first; its status is only ever
        # changed together with the pointer, which is watched.
        if self._transaction([key, pointer], body):
            log.info("promoted %s", version)

    def _check_signature(self, client: Any, survey: str, version: str) -> None:
        """Refuse a version whose recorded manifest and sha256 are not signed by an accepted key
        (cheap: the bytes are checked against that sha256 when fetched)."""
        manifest, sha, signature = (
            text(v)
            for v in client.hmget(
                keys.model_key(survey, version), ["manifest", "sha256", SIGNATURE_FIELD]
            )
        )
        if manifest is None or sha is None:
            raise RegistryError(f"unknown model version {survey}/{version}")
        self.keys.verify(manifest, sha, signature, f"{survey}/{version}")

    def sign(self, survey: str, version: str) -> bool:
        """Sign ``version`` with this registry's signing key (key rotation; adopting a version
        published before models were signed). A version signed by none of the accepted keys is
        refused: a forged signature is never replaced. Returns whether an unsigned version was
        adopted (the caller vouches for it)."""
        key = _owned_key(survey, version)

        def body(pipe: redis.client.Pipeline) -> bool:
            manifest, sha, signature = (
                text(v) for v in pipe.hmget(key, ["manifest", "sha256", SIGNATURE_FIELD])
            )
            if manifest is None or sha is None:
                raise RegistryError(f"unknown model version {survey}/{version}")
            if signature:
                self.keys.verify(manifest, sha, signature, f"{survey}/{version}")
            pipe.multi()
            pipe.hset(key, SIGNATURE_FIELD, self.keys.sign(manifest, sha))
            return not signature

        adopted = self._transaction([key], body)
        log.info("signed %s%s", version, " (was unsigned)" if adopted else "")
        return adopted

    def rollback(self, survey: str) -> str:
        """Make the version that was live before the current one live again; returns it.

        Versions rejected since they were live are skipped. The rolled-back version becomes
        ``retired`` (it may be promoted again later). Raises if there is nothing to go back to.
        """
        pointer, history = keys.model_live_key(survey), keys.model_history_key(survey)

        def body(pipe: redis.client.Pipeline) -> str:
            current = text(pipe.get(pointer))
            if current is None:
                raise RegistryError(f"{survey} has no live model")
            past = [text(v) for v in pipe.lrange(history, 0, -1)]
            while past and past[-1] == current:
                past.pop()
            target: str | None = None
            while past:
                candidate = past[-1]
                assert candidate is not None
                pipe.watch(keys.model_key(survey, candidate))  # a concurrent reject() must retry us
                status = text(pipe.hget(keys.model_key(survey, candidate), "status"))
                if candidate != current and status is not None and status != "rejected":
                    target = candidate
                    break
                past.pop()
            if target is None:
                raise RegistryError(f"{survey}: no earlier version to roll back to")
            self._check_signature(pipe, survey, target)
            pipe.multi()
            pipe.hset(
                keys.model_key(survey, current),
                mapping={"status": "retired", "reason": f"rolled back to {target}"},
            )
            pipe.hset(
                keys.model_key(survey, target),
                mapping={"status": "live", "reason": "", "promoted_at": repr(time.time())},
            )
            pipe.set(pointer, target)
            pipe.delete(history)
            pipe.rpush(history, *[v for v in past if v is not None])
            self._announce(pipe, survey, target, "rollback", current)
            return target

        target = self._transaction([pointer, history], body)
        log.info("rolled %s back to %s", survey, target)
        return target

    def prune(self, survey: str, keep: int) -> list[str]:
        """Delete old versions, bytes and record, so the registry does not grow without bound
        (a model is a few MB; retraining hourly would add ~2 GB a month). Kept: the live
        version, the ``keep`` versions that were live before it (the rollback targets), and the
        ``keep`` most recent versions (whatever their status, so recent rejections stay visible).
        Returns the deleted versions, oldest first. One transaction under WATCH of the pointer
        and history, so a concurrent promote or rollback makes it retry, never races it."""
        if keep < 1:
            raise ValueError("keep must be >= 1")
        pointer, history, index = (
            keys.model_live_key(survey),
            keys.model_history_key(survey),
            keys.model_versions_key(survey),
        )

        def body(pipe: redis.client.Pipeline) -> list[str]:
            versions = _names(pipe.zrange(index, 0, -1))
            live = text(pipe.get(pointer))
            past = [v for v in (text(x) for x in pipe.lrange(history, 0, -1)) if v is not None]
            earlier = [v for v in past if v != live]
            kept = {live, *earlier[-keep:], *versions[-keep:]}
            doomed = [v for v in versions if v not in kept]
            if not doomed:
                pipe.unwatch()
                return []
            pipe.multi()
            pipe.delete(*(keys.model_key(survey, v) for v in doomed))
            pipe.zrem(index, *doomed)
            remaining = [v for v in past if v not in doomed]
            pipe.delete(history)
            if remaining:
                pipe.rpush(history, *remaining)
            return doomed

        deleted = self._transaction([pointer, history, index], body)
        if deleted:
            log.info("pruned %s: %s", survey, ", ".join(deleted))
        return deleted

    @staticmethod
    def _announce(
        pipe: redis.client.Pipeline, survey: str, version: str, action: str, previous: str | None
    ) -> None:
        message = {
            "survey": survey,
            "version": version,
            "action": action,
            "previous": previous,
            "at": time.time(),
        }
        pipe.publish(keys.MODELS_ANNOUNCE, json.dumps(message, sort_keys=True))

    # -- reads ---------------------------------------------------------------------------------

    def current(self, survey: str) -> str | None:
        return text(self.client.get(keys.model_live_key(survey)))

    def record(self, survey: str, version: str) -> ModelRecord | None:
        values = self.client.hmget(keys.model_key(survey, version), list(RECORD_FIELDS))
        return record_from(survey, version, list(values))

    def history(self, survey: str) -> list[str]:
        """Versions that went live, oldest first (the last is the live one)."""
        raw = self.client.lrange(keys.model_history_key(survey), 0, -1)
        return [v for v in (text(x) for x in raw) if v is not None]

    def surveys(self) -> list[str]:
        raw = self.client.smembers(keys.MODEL_SURVEYS)
        return sorted(v for v in (text(x) for x in raw) if v is not None)

    def versions(self, survey: str) -> list[str]:
        return _names(self.client.zrange(keys.model_versions_key(survey), 0, -1))

    def list(self, survey: str | None = None) -> list[ModelRecord]:
        """Records of every version (of one survey), oldest first."""
        records: list[ModelRecord] = []
        for name in [survey] if survey is not None else self.surveys():
            versions = self.versions(name)
            pipe = self.client.pipeline(transaction=False)
            for version in versions:
                pipe.hmget(keys.model_key(name, version), list(RECORD_FIELDS))
            for version, values in zip(versions, pipe.execute(), strict=True):
                record = record_from(name, version, list(values))
                if record is not None:
                    records.append(record)
        return records

    def next_version(self, survey: str) -> str:
        """The version after the highest published one: ``ztf-0001``, ``ztf-0002``...

        Not a reservation: two exporters that race get the same name and the second
        :meth:`publish` is refused (versions are immutable), so nothing is overwritten.
        """
        parse_version(f"{survey}-0001")  # validates the survey name
        top = self.client.zrange(keys.model_versions_key(survey), -1, -1, withscores=True)
        number = int(top[0][1]) + 1 if top else 1
        return f"{survey}-{number:04d}"

    # -- distribution --------------------------------------------------------------------------

    def fetch(self, survey: str, version: str) -> Path:
        """Materialise ``version`` as ``cache_dir/<survey>/<version>/`` (model file +
        ``manifest.json``) and return that directory.

        A cached directory is reused when it verifies and matches the registry's sha256. Bytes
        from Redis are hashed before anything is written; a mismatch with the recorded sha256 or
        the manifest raises :class:`ModelIntegrityError` and leaves nothing behind. The directory
        appears by one rename, so a reader never sees a half-written model.
        """
        parse_version(version)
        key = keys.model_key(survey, version)
        sha, manifest_json, signature = (
            text(v) for v in self.client.hmget(key, ["sha256", "manifest", SIGNATURE_FIELD])
        )
        if sha is None or manifest_json is None:
            raise RegistryError(f"unknown model version {survey}/{version}")
        # Before anything touches the disk: a cached copy is only reused for a signed record.
        self.keys.verify(manifest_json, sha, signature, f"{survey}/{version}")
        target = self.cache_dir / survey / version
        if cache.cached(target, sha):
            return target

        data = self.client.hget(key, "onnx")
        if not isinstance(data, bytes):
            raise RegistryError(f"{survey}/{version}: no model bytes in the registry")
        manifest = Manifest.from_json(manifest_json)
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha or actual != manifest.sha256 or manifest.version != version:
            raise ModelIntegrityError(
                f"registry {survey}/{version}: bytes hash to {actual}, registry says {sha}, "
                f"manifest says {manifest.sha256} (version {manifest.version}): refused"
            )
        return cache.materialise(target, data, manifest, manifest_json)


def _names(members: Iterable[Any]) -> list[str]:
    """Sorted-set members (bytes, as every client here answers) as text."""
    return [m.decode() if isinstance(m, bytes) else str(m) for m in members]


def set_live_version_info(registry: Registry, gauge: Gauge) -> None:
    """Fill ``ahunt_registry_live_version_info{survey,version}``: 1 for each survey's live
    version (``gauge`` is e.g. ``RegistryMetrics().live_version``); stale series are removed."""
    live = {s: v for s in registry.surveys() if (v := registry.current(s)) is not None}
    gauge.clear()
    for survey, version in live.items():
        gauge.labels(survey, version).set(1)
