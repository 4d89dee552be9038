"""Registry versions on local disk: ``<cache_dir>/<survey>/<version>/``, a model directory the
scorer and the gate open like any other.

A version appears by one rename of a fully written, fsynced and verified staging directory, so a
reader never sees a half-written model; a damaged cached copy is removed and fetched again, and a
cached copy of another model under the same version name is refused.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from models.manifest import MANIFEST_FILE, Manifest
from models.model_dir import ModelIntegrityError, fsync_path, verify_model_dir

log = logging.getLogger("ahunt.registry")


def cached(target: Path, sha: str) -> bool:
    """Whether ``target`` holds a sound copy of the model with this sha256."""
    if not target.is_dir():
        return False
    try:
        manifest = verify_model_dir(target)
    except ModelIntegrityError as exc:
        log.warning("cached model %s is damaged (%s): fetching it again", target, exc)
        shutil.rmtree(target, ignore_errors=True)
        return False
    if manifest.sha256 != sha:
        raise ModelIntegrityError(
            f"{target} holds a model with sha256 {manifest.sha256}, the registry's has {sha}: "
            "another model of the same version name is in the cache directory"
        )
    return True


def materialise(target: Path, data: bytes, manifest: Manifest, manifest_json: str) -> Path:
    """Write ``data`` (already checked against ``manifest.sha256``) and its manifest as the
    model directory ``target``; returns ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with _staging(target) as tmp:
        (tmp / manifest.model_file).write_bytes(data)
        (tmp / MANIFEST_FILE).write_text(manifest_json, encoding="utf-8")
        for name in (manifest.model_file, MANIFEST_FILE):
            fsync_path(tmp / name)
        verify_model_dir(tmp)
        fsync_path(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process materialised it first (rename onto a non-empty directory fails);
            # use theirs if it is sound.
            if not cached(target, manifest.sha256):
                raise
    fsync_path(target.parent)
    return target


@contextlib.contextmanager
def _staging(target: Path) -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when the rename succeeded
