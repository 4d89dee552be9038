"""What decoding gives: an :class:`Alert` per good record, a :class:`Rejected` per bad one.

Errors are values: every refusal carries a stable ``reason`` (a key of :data:`REJECT_REASONS`,
used as a dead-letter field and a metric label) and a message in the decoder's own words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from services.common.cutouts import CUTOUT_REASONS

__all__ = ["REJECT_REASONS", "Alert", "BrokenMessage", "Rejected", "Survey"]

Survey = Literal["ztf", "rubin"]

#: Every ``Rejected.reason``, with what it means. Stable strings (dead letters, metric labels).
REJECT_REASONS: Final[dict[str, str]] = {
    "empty_message": "the payload is zero bytes",
    "bad_magic": "neither an Avro container (Obj\\x01) nor Confluent framing (0x00 + id)",
    "truncated": "the payload ends inside the header, a block, or the record",
    "corrupt_avro": "undecodable Avro: bad sync marker, block CRC, varint, union index, "
    "UTF-8, trailing bytes, or a schema in the container that does not parse",
    "unsupported_codec": "a container codec other than null, deflate or snappy",
    "no_records": "a well-formed container that holds no record",
    "unknown_schema_id": "Confluent schema id found in neither the schema directory nor the "
    "registry (or no SchemaSource was given)",
    "bad_schema": "the schema for that id is not a usable Avro schema",
    "unknown_survey": "the writer schema looks like no alert: neither ZTF's (candidate, candid, "
    "objectId, jd, magpsf) nor Rubin's (diaSource, diaSourceId, midpointMjdTai) fields",
    "missing_field": "a field the alert requires (ids, ra, dec, time, ZTF magnitude, a cutout) "
    "is absent from the schema, of a type that cannot hold it, or null in the record",
    "out_of_range": "a value that is not finite or not physical: ra outside [0, 360), dec "
    "outside [-90, 90], a time outside the survey's years, a magnitude outside [-30, 40]",
    "message_too_large": "the message's blocks and stamps together inflate past what a real "
    "packet of its size holds (limits.message_budget)",
    **CUTOUT_REASONS,
}


@dataclass(frozen=True, slots=True, eq=False)
class Alert:
    """One decoded alert: what scoring and routing use, plus the stamps to forward to users.

    ``eq=False``: field-wise ``==`` on numpy arrays is ambiguous; compare ``alert_id`` instead.
    ``cutouts`` are read-only float32 arrays at their real size (science, template, difference);
    ``cutout_bytes`` are the original stamp bytes in the same order. Position and time are
    always there (a record without them is rejected); ``magnitude`` is None for a Rubin source
    whose difference flux is not positive, and ``object_id`` is ``""`` for a Rubin source not
    yet associated with any object.
    """

    alert_id: str
    object_id: str
    survey: Survey
    schema_version: str
    ra: float
    dec: float
    magnitude: float | None
    observed_mjd: float
    cutouts: tuple[np.ndarray, np.ndarray, np.ndarray]
    cutout_bytes: tuple[bytes, bytes, bytes]


@dataclass(frozen=True)
class Rejected:
    """Why one record (``index`` in the message) or a whole message (``index=None``) was refused.

    ``reason`` is a key of :data:`REJECT_REASONS`; ``message`` carries the detail (the decoder's
    own words where there are any); ``alert_id`` is set when the record got that far.
    """

    reason: str
    message: str
    index: int | None = None
    alert_id: str | None = None

    def __post_init__(self) -> None:
        if self.reason not in REJECT_REASONS:
            raise AssertionError(f"unknown rejection reason {self.reason!r}")


class BrokenMessage(Exception):
    """A whole-message rejection travelling up to ``decode_message`` (one Rejected, index None)."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REJECT_REASONS:
            raise AssertionError(f"unknown rejection reason {reason!r}")
        super().__init__(message)
        self.reason = reason
        self.message = message
