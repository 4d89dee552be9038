"""The model manifest: what a served model directory contains and how to trust it.

A model directory is the unit the registry publishes and the scorer loads::

    ztf-0003/
        model.onnx       one self-contained ONNX graph (no external-data side file)
        manifest.json    this module's :class:`Manifest`, JSON with sorted keys

The manifest carries everything a consumer needs to use the model without importing the training
code: class names in output order (reserve first), the input shape and the preprocessing that
training used (so serving cannot drift from it), what each output means, training counts and
metrics, the parent version (lineage for rollbacks) and the sha256 of ``model.onnx``.

This module is deliberately torch-free (numpy is not even needed): the scorer image carries no
torch, yet it has to read manifests, verify model files and open onnxruntime sessions, so
:func:`load_session` and :func:`session_uses_cuda` live here (``models.export`` re-exports them).

Integrity: :func:`verify_model_dir` recomputes the sha256 of the model file and
:func:`load_session` builds the session from exactly the bytes it hashed, so a truncated copy, a
bit flip or a file swapped after verification can never be served.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # onnxruntime is imported lazily: reading a manifest must not need it.
    import onnxruntime

__all__ = [
    "FORMAT_VERSION",
    "INPUT_NAME",
    "MANIFEST_FILE",
    "MODEL_FILE",
    "OUTPUT_NAMES",
    "Manifest",
    "ModelIntegrityError",
    "load_session",
    "parse_created_at",
    "read_manifest",
    "session_uses_cuda",
    "sha256_file",
    "utc_now_iso",
    "verify_model_dir",
    "write_manifest",
]

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
INPUT_NAME = "stamps"
OUTPUT_NAMES: tuple[str, str, str] = ("latent", "probs", "novelty")

# Providers that mean "this session runs on a GPU".
_GPU_PROVIDERS = frozenset({"CUDAExecutionProvider", "TensorrtExecutionProvider"})
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


class ModelIntegrityError(ValueError):
    """A model directory is incomplete or its model file does not match the manifest's sha256."""


def utc_now_iso() -> str:
    """Current UTC time as ISO-8601 with a ``Z`` suffix and microseconds.

    >>> utc_now_iso().endswith("Z")
    True
    """
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_created_at(text: str) -> datetime:
    """Parse a manifest timestamp (ISO-8601 UTC ending in ``Z``) into an aware datetime.

    >>> parse_created_at("2025-01-02T03:04:05Z").isoformat()
    '2025-01-02T03:04:05+00:00'
    """
    if not isinstance(text, str) or not text.endswith("Z"):
        raise ValueError(f"created_at must be ISO-8601 UTC ending in 'Z', got {text!r}")
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00")
    except ValueError as exc:
        raise ValueError(f"created_at is not ISO-8601: {text!r}") from exc
    return parsed


def _json_native(value: Any, what: str) -> Any:
    """Deep copy through JSON so the field is exactly what a round trip gives back (tuples become
    lists, numpy scalars fail loudly) and a manifest equals its ``from_json(to_json())``."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Manifest.{what} is not JSON serialisable: {exc}") from exc


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """Description of one exported model; see the module docstring.

    ``version`` and ``parent_version`` are opaque strings chosen by the registry (e.g.
    ``"ztf-0003"``). ``classes[i]`` names column ``i`` of the ``probs`` output and
    ``classes[reserve_index]`` is the reserve ("none of the above") class. ``outputs`` maps each
    output name to its index, shape (``"batch"`` for the dynamic axis), dtype and meaning.
    ``detector`` describes the latent novelty detector baked into the graph (kind, k, bank size,
    reference scale). ``parity_max_abs_diff`` is the largest difference between torch and
    onnxruntime measured at export time.

    Adding or renaming a field is a ``format_version`` bump: readers reject unknown versions and
    unknown or missing keys rather than guess.
    """

    format_version: int = FORMAT_VERSION
    version: str
    parent_version: str | None = None
    created_at: str
    survey: str | None = None
    classes: list[str]
    reserve_index: int = 0
    input_spec: dict[str, Any]
    preprocessing: dict[str, Any]
    outputs: dict[str, Any]
    training_counts: dict[str, int]
    metrics: dict[str, float]
    learner_config: dict[str, Any]
    detector: dict[str, Any]
    model_file: str = MODEL_FILE
    sha256: str
    parity_max_abs_diff: float
    torch_version: str
    onnx_opset: int

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if self.format_version != FORMAT_VERSION or isinstance(self.format_version, bool):
            raise ValueError(
                f"unsupported manifest format_version {self.format_version!r} "
                f"(this code reads {FORMAT_VERSION})"
            )
        if not isinstance(self.version, str) or not self.version:
            raise ValueError(f"Manifest.version must be a non-empty string, got {self.version!r}")
        for name in ("parent_version", "survey"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"Manifest.{name} must be None or a non-empty string")
        parse_created_at(self.created_at)

        if isinstance(self.classes, str) or not isinstance(self.classes, Sequence):
            raise ValueError("Manifest.classes must be a list of strings")
        classes = list(self.classes)
        if len(classes) < 2 or not all(isinstance(c, str) and c for c in classes):
            raise ValueError(f"Manifest.classes needs >= 2 non-empty names, got {classes!r}")
        if len(set(classes)) != len(classes):
            raise ValueError(f"Manifest.classes has duplicates: {classes!r}")
        put("classes", classes)
        if (
            isinstance(self.reserve_index, bool)
            or not isinstance(self.reserve_index, int)
            or not 0 <= self.reserve_index < len(classes)
        ):
            raise ValueError(f"Manifest.reserve_index out of range: {self.reserve_index!r}")

        for name in ("input_spec", "preprocessing", "outputs", "learner_config", "detector"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise ValueError(f"Manifest.{name} must be a mapping")
            put(name, _json_native(dict(value), name))
        missing_outputs = [o for o in OUTPUT_NAMES if o not in self.outputs]
        if missing_outputs:
            raise ValueError(f"Manifest.outputs lacks {missing_outputs}")

        if not isinstance(self.training_counts, Mapping):
            raise ValueError("Manifest.training_counts must be a mapping")
        counts: dict[str, int] = {}
        for key, count in self.training_counts.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"training count for {key!r} must be an int >= 0, got {count!r}")
            counts[str(key)] = int(count)
        put("training_counts", counts)

        if not isinstance(self.metrics, Mapping):
            raise ValueError("Manifest.metrics must be a mapping")
        metrics: dict[str, float] = {}
        for key, metric in self.metrics.items():
            # JSON has no NaN/inf; a metric that is undefined should be left out, not faked.
            if isinstance(metric, bool) or not isinstance(metric, int | float):
                raise ValueError(f"metric {key!r} must be a number, got {metric!r}")
            if not math.isfinite(metric):
                raise ValueError(f"metric {key!r} must be finite, got {metric!r}")
            metrics[str(key)] = float(metric)
        put("metrics", metrics)

        model_file = self.model_file
        if (
            not isinstance(model_file, str)
            or not model_file
            or model_file in (".", "..")
            or "/" in model_file
            or "\\" in model_file
        ):
            # A plain file name only: a manifest must never point outside its own directory.
            raise ValueError(f"Manifest.model_file must be a plain file name, got {model_file!r}")
        if not isinstance(self.sha256, str) or not _SHA256_RE.fullmatch(self.sha256):
            raise ValueError(f"Manifest.sha256 must be 64 lower-case hex, got {self.sha256!r}")
        diff = self.parity_max_abs_diff
        if isinstance(diff, bool) or not isinstance(diff, int | float) or not diff >= 0:
            raise ValueError(f"Manifest.parity_max_abs_diff must be >= 0, got {diff!r}")
        put("parity_max_abs_diff", float(diff))
        if not isinstance(self.torch_version, str):
            raise ValueError("Manifest.torch_version must be a string")
        if isinstance(self.onnx_opset, bool) or not isinstance(self.onnx_opset, int):
            raise ValueError(f"Manifest.onnx_opset must be an int, got {self.onnx_opset!r}")

    @property
    def created_datetime(self) -> datetime:
        """``created_at`` as an aware UTC datetime."""
        return parse_created_at(self.created_at)

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-native dict."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, indent 2, trailing newline, no NaN."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Parse and validate; ValueError on bad JSON, an unknown ``format_version`` or unknown
        or missing keys (every key is written by :meth:`to_json`, so none may be absent)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"manifest is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError("manifest must be a JSON object")
        if "format_version" not in data:
            raise ValueError("manifest has no format_version")
        version = data["format_version"]
        if isinstance(version, bool) or version != FORMAT_VERSION:
            raise ValueError(
                f"unsupported manifest format_version {version!r} (this code reads "
                f"{FORMAT_VERSION})"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(names - set(data))
        unknown = sorted(set(data) - names)
        if missing or unknown:
            raise ValueError(f"manifest keys: missing {missing}, unknown {unknown}")
        return cls(**data)


def _fsync_dir(directory: Path) -> None:
    """Make a rename or file creation inside ``directory`` durable (best effort off POSIX)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_manifest(directory: str | os.PathLike[str], manifest: Manifest) -> Path:
    """Write ``manifest.json`` into ``directory`` atomically; returns its path.

    The JSON goes to a temporary file in the same directory, is fsynced and then ``os.replace``d
    over the target, so a reader sees the old manifest or the new one, never a torn one, even if
    the process dies mid-write.
    """
    directory = Path(directory)
    target = directory / MANIFEST_FILE
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{MANIFEST_FILE}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(manifest.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(directory)
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


def _read_verified(directory: Path) -> tuple[bytes, Manifest]:
    """Manifest plus the model bytes, checked against the manifest's sha256 (the same checks as
    :func:`verify_model_dir`, on bytes held in memory)."""
    manifest = _checked_manifest(directory)
    model_path = directory / manifest.model_file
    try:
        data = model_path.read_bytes()
    except FileNotFoundError as exc:
        raise ModelIntegrityError(f"{model_path}: model file missing") from exc
    _check_hash(model_path, hashlib.sha256(data).hexdigest(), manifest)
    return data, manifest


def load_session(
    model_dir: str | os.PathLike[str],
    providers: Sequence[str] | None = None,
    intra_op_threads: int = 1,
) -> tuple[onnxruntime.InferenceSession, Manifest]:
    """Verify ``model_dir`` and open an onnxruntime session on it.

    The session is built from the very bytes whose sha256 was checked (not by re-opening the
    path), so a file replaced between the check and the load is still caught. ``providers``
    defaults to CPU only; pass e.g. ``("CUDAExecutionProvider", "CPUExecutionProvider")`` to try
    a GPU and use :func:`session_uses_cuda` to see whether onnxruntime actually got one.
    ``intra_op_threads`` defaults to 1: on shared cores one thread per worker process scales
    better than threads inside one session (see docs/PLATFORM.md).

    Raises :class:`ModelIntegrityError` if the directory fails verification or the graph's
    input/output names do not match the manifest.
    """
    import onnxruntime  # lazy: reading a manifest must not require onnxruntime

    if intra_op_threads < 1:
        raise ValueError(f"intra_op_threads must be >= 1, got {intra_op_threads}")
    data, manifest = _read_verified(Path(model_dir))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        data, sess_options=options, providers=list(providers or ("CPUExecutionProvider",))
    )
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if inputs != [INPUT_NAME] or outputs != list(OUTPUT_NAMES):
        raise ModelIntegrityError(
            f"{model_dir}: graph has inputs {inputs} and outputs {outputs}, expected "
            f"[{INPUT_NAME!r}] and {list(OUTPUT_NAMES)}"
        )
    return session, manifest


def session_uses_cuda(session: onnxruntime.InferenceSession) -> bool:
    """Whether ``session`` really runs on a GPU provider.

    Uses ``session.get_providers()`` (what the session got), never
    ``onnxruntime.get_available_providers()``: onnxruntime-gpu lists CUDA there even on machines
    without a GPU, and a session that asked for CUDA silently falls back to CPU.
    """
    return any(p in _GPU_PROVIDERS for p in session.get_providers())
