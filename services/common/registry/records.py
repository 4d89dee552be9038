"""What the registry knows about a version: its name (``<survey>-NNNN``), its status and its
record (everything but the model bytes), parsed from the version's Redis hash."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from services.common.values import text

__all__ = [
    "RECORD_FIELDS",
    "SIGNATURE_FIELD",
    "ModelRecord",
    "RegistryError",
    "Status",
    "parse_version",
    "record_from",
    "survey_of",
]

Status = Literal["candidate", "live", "retired", "rejected"]
_VERSION_RE = re.compile(r"^(?P<survey>[a-z0-9][a-z0-9_]{0,31})-(?P<number>[0-9]{4,9})$")


class RegistryError(ValueError):
    """A registry operation that is not allowed (unknown version, promoting a rejected one...)."""


def parse_version(version: str) -> tuple[str, int]:
    """Split ``<survey>-NNNN`` into its survey and number.

    >>> parse_version("ztf-0003")
    ('ztf', 3)
    """
    match = _VERSION_RE.match(version)
    if not match:
        raise RegistryError(f"invalid model version {version!r}: expected <survey>-NNNN")
    return match["survey"], int(match["number"])


def survey_of(version: str) -> str:
    """The survey a version belongs to.

    >>> survey_of("rubin-0012")
    'rubin'
    """
    return parse_version(version)[0]


class ModelRecord(BaseModel):
    """What the registry knows about one version (everything but the model bytes)."""

    model_config = ConfigDict(frozen=True)

    survey: str
    version: str
    status: Status
    reason: str | None  # why rejected or retired, or a note
    sha256: str
    size: int
    manifest: dict[str, Any]
    created_at: float  # when published to the registry (unix seconds)
    promoted_at: float | None  # when it last went live
    signed: bool = False  # carries a signature (whether it verifies is the reader's check)

    @property
    def parent(self) -> str | None:
        parent = self.manifest.get("parent_version")
        return parent if isinstance(parent, str) else None

    @property
    def metrics(self) -> dict[str, float]:
        metrics = self.manifest.get("metrics") or {}
        return dict(metrics) if isinstance(metrics, dict) else {}


SIGNATURE_FIELD = "signature"  # hex HMAC over manifest + sha256 (services.common.signing)
RECORD_FIELDS = (
    "manifest",
    "sha256",
    "size",
    "status",
    "reason",
    "created_at",
    "promoted_at",
    SIGNATURE_FIELD,
)


def record_from(survey: str, version: str, values: list[Any]) -> ModelRecord | None:
    fields = dict(zip(RECORD_FIELDS, (text(v) for v in values), strict=True))
    if fields["manifest"] is None:
        return None
    promoted = fields["promoted_at"]
    reason = fields["reason"]
    return ModelRecord(
        survey=survey,
        version=version,
        status=fields["status"],  # type: ignore[arg-type]  # validated by pydantic
        reason=reason or None,
        sha256=fields["sha256"] or "",
        size=int(fields["size"] or 0),
        manifest=json.loads(fields["manifest"]),
        created_at=float(fields["created_at"] or 0.0),
        promoted_at=float(promoted) if promoted else None,
        signed=bool(fields[SIGNATURE_FIELD]),
    )
