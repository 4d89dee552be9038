"""The model manifest: what a served model directory contains, as validated data.

A model directory is the unit the registry publishes and the scorer loads::

    ztf-0003/
        model.onnx       one self-contained ONNX graph (no external-data side file)
        manifest.json    this module's :class:`Manifest`, JSON with sorted keys

The manifest carries everything a consumer needs to use the model without importing the training
code: class names in output order (reserve first), the input shape and the preprocessing that
training used (so serving cannot drift from it), what each output means, training counts and
metrics, the parent version (lineage for rollbacks) and the sha256 of ``model.onnx``.

Reading and writing directories is :mod:`models.model_dir`; opening and running the graph is
:mod:`models.session`. All three are torch-free: the scorer image carries no torch.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "FORMAT_VERSION",
    "INPUT_NAME",
    "MANIFEST_FILE",
    "MODEL_FILE",
    "OUTPUT_NAMES",
    "Manifest",
    "parse_created_at",
    "utc_now_iso",
]

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
INPUT_NAME = "stamps"
OUTPUT_NAMES: tuple[str, str, str] = ("latent", "probs", "novelty")

NonEmpty = Annotated[str, Field(min_length=1)]


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


def _json_native(value: dict[str, Any]) -> dict[str, Any]:
    """Deep copy through JSON so the field is exactly what a round trip gives back (tuples become
    lists, numpy scalars fail loudly) and a manifest equals its ``from_json(to_json())``."""
    try:
        copied: dict[str, Any] = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not JSON serialisable: {exc}") from exc
    return copied


class Manifest(BaseModel):
    """Description of one exported model; see the module docstring.

    ``version`` and ``parent_version`` are opaque strings chosen by the registry (e.g.
    ``"ztf-0003"``). ``classes[i]`` names column ``i`` of the ``probs`` output and
    ``classes[reserve_index]`` is the reserve ("none of the above") class. ``outputs`` maps each
    output name to its index, shape (``"batch"`` for the dynamic axis), dtype and meaning.
    ``detector`` describes the latent novelty detector baked into the graph (kind, k, bank size,
    reference scale). ``parity_max_abs_diff`` is the largest difference between torch and
    onnxruntime measured at export time.

    Types are strict (no bool for a number, no string for an int) and the model is frozen; change
    a field with :meth:`replace`, which validates again. Adding or renaming a field is a
    ``format_version`` bump: readers reject unknown versions and unknown or missing keys rather
    than guess.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    format_version: int = FORMAT_VERSION
    version: NonEmpty
    parent_version: NonEmpty | None = None
    created_at: str
    survey: NonEmpty | None = None
    classes: list[NonEmpty] = Field(min_length=2)
    reserve_index: int = Field(default=0, ge=0)
    input_spec: dict[str, Any]
    preprocessing: dict[str, Any]
    outputs: dict[str, Any]
    training_counts: dict[str, Annotated[int, Field(ge=0)]]
    # JSON has no NaN/inf: a metric that is undefined is left out, not faked.
    metrics: dict[str, float]
    learner_config: dict[str, Any]
    detector: dict[str, Any]
    model_file: str = MODEL_FILE
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    parity_max_abs_diff: float = Field(ge=0.0)
    torch_version: str
    onnx_opset: int

    @field_validator("format_version")
    @classmethod
    def _known_format(cls, value: int) -> int:
        if value != FORMAT_VERSION:
            raise ValueError(
                f"unsupported manifest format_version {value!r} (this code reads {FORMAT_VERSION})"
            )
        return value

    @field_validator("created_at")
    @classmethod
    def _iso_utc(cls, value: str) -> str:
        parse_created_at(value)
        return value

    @field_validator("model_file")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        # A plain file name only: a manifest must never point outside its own directory.
        if not value or value in (".", "..") or "/" in value or "\\" in value:
            raise ValueError(f"model_file must be a plain file name, got {value!r}")
        return value

    @field_validator("classes", mode="before")
    @classmethod
    def _any_sequence(cls, value: Any) -> Any:
        return list(value) if isinstance(value, tuple) else value

    @field_validator("input_spec", "preprocessing", "outputs", "learner_config", "detector")
    @classmethod
    def _native(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _json_native(value)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes has duplicates: {self.classes!r}")
        if self.reserve_index >= len(self.classes):
            raise ValueError(f"reserve_index out of range: {self.reserve_index!r}")
        missing = [o for o in OUTPUT_NAMES if o not in self.outputs]
        if missing:
            raise ValueError(f"outputs lacks {missing}")
        return self

    @property
    def created_datetime(self) -> datetime:
        """``created_at`` as an aware UTC datetime."""
        return parse_created_at(self.created_at)

    def replace(self, **changes: Any) -> Manifest:
        """A copy with ``changes``, validated like a new manifest."""
        return Manifest.model_validate({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-native dict."""
        return self.model_dump()

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
        names = set(cls.model_fields)
        missing = sorted(names - set(data))
        unknown = sorted(set(data) - names)
        if missing or unknown:
            raise ValueError(f"manifest keys: missing {missing}, unknown {unknown}")
        return cls.model_validate(data)
