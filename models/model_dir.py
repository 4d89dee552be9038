"""Model directories on disk: write a manifest atomically, read it back, verify the model file
against its sha256, and make renames durable (:func:`fsync_path`, the one fsync helper).

Integrity: :func:`verify_model_dir` recomputes the sha256 of the model file, and
:func:`read_verified` hands out the very bytes it hashed (``models.session.load_session`` builds
its session from them), so a truncated copy, a bit flip or a file swapped after verification can
never be served.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from models.manifest import MANIFEST_FILE, Manifest

__all__ = [
    "ModelIntegrityError",
    "atomic_write_text",
    "fsync_path",
    "read_manifest",
    "read_verified",
    "sha256_file",
    "verify_model_dir",
    "write_manifest",
]

_CHUNK = 1 << 20


class ModelIntegrityError(ValueError):
    """A model directory is incomplete or its model file does not match the manifest's sha256."""


def fsync_path(path: str | os.PathLike[str]) -> None:
    """fsync a file or a directory by path (a directory: makes the renames and file creations
    inside it durable). Best effort: where the OS refuses (off POSIX), nothing more can be done."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(target: Path, text: str) -> None:
    """Replace ``target`` with ``text`` so that a reader sees the old content or the new one,
    never a torn file, even if the process dies mid-write: a temporary file in the same
    directory, fsynced, ``os.replace``d over the target, then the directory fsynced."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    fsync_path(target.parent)


def write_manifest(directory: str | os.PathLike[str], manifest: Manifest) -> Path:
    """Write ``manifest.json`` into ``directory`` atomically; returns its path."""
    target = Path(directory) / MANIFEST_FILE
    atomic_write_text(target, manifest.to_json())
    return target


def read_manifest(directory: str | os.PathLike[str]) -> Manifest:
    """Read and validate ``directory/manifest.json`` (FileNotFoundError if absent)."""
    return Manifest.from_json((Path(directory) / MANIFEST_FILE).read_text(encoding="utf-8"))


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (constant memory whatever the size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _checked_manifest(directory: Path) -> Manifest:
    """``read_manifest`` with every failure reported as :class:`ModelIntegrityError`."""
    try:
        return read_manifest(directory)
    except FileNotFoundError as exc:
        raise ModelIntegrityError(f"{directory}: no {MANIFEST_FILE}") from exc
    except ValueError as exc:
        raise ModelIntegrityError(f"{directory}: invalid {MANIFEST_FILE}: {exc}") from exc


def _check_hash(model_path: Path, actual: str, manifest: Manifest) -> None:
    if actual != manifest.sha256:
        raise ModelIntegrityError(
            f"{model_path}: sha256 {actual} does not match manifest {manifest.sha256} "
            f"(version {manifest.version})"
        )


def verify_model_dir(directory: str | os.PathLike[str]) -> Manifest:
    """Check that ``directory`` holds a valid manifest and a model file with its sha256.

    Raises :class:`ModelIntegrityError` when the manifest or model file is missing, the manifest
    is invalid, or the hash differs. Returns the manifest.
    """
    directory = Path(directory)
    manifest = _checked_manifest(directory)
    model_path = directory / manifest.model_file
    try:
        actual = sha256_file(model_path)
    except FileNotFoundError as exc:
        raise ModelIntegrityError(f"{model_path}: model file missing") from exc
    _check_hash(model_path, actual, manifest)
    return manifest


def read_verified(directory: str | os.PathLike[str]) -> tuple[bytes, Manifest]:
    """Manifest plus the model bytes, checked against the manifest's sha256 (the same checks as
    :func:`verify_model_dir`, on bytes held in memory)."""
    directory = Path(directory)
    manifest = _checked_manifest(directory)
    model_path = directory / manifest.model_file
    try:
        data = model_path.read_bytes()
    except FileNotFoundError as exc:
        raise ModelIntegrityError(f"{model_path}: model file missing") from exc
    _check_hash(model_path, hashlib.sha256(data).hexdigest(), manifest)
    return data, manifest
