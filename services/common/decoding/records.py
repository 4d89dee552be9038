"""One projected record -> an :class:`~.results.Alert`, or the reason it is not one.

The plan's :class:`~.layout.Located` says where each field sits in this writer schema; a role
with several paths (ZTF's ``candid`` at the top level and in ``candidate``) takes the first that
is not null. What is required and why is in :mod:`services.common.alerts`.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np

from services.common.cutouts import CutoutError, decode_stamp
from services.common.decoding.layout import Located
from services.common.decoding.plans import VERSION_IN_NAME, Plan
from services.common.decoding.results import Alert, Rejected, Survey

__all__ = ["to_alert"]

_CUTOUT_FIELDS: Final = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
_JD_TO_MJD: Final = 2400000.5
# AB magnitude of a flux in nJy: -2.5 log10(f * 1e-9 Jy / 3631 Jy) = 31.4 - 2.5 log10(f)
_NJY_AB_ZEROPOINT: Final = 31.4


class _Refused(Exception):
    """One record's rejection travelling up to :func:`_to_alert`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def to_alert(
    record: dict[str, Any], survey: Survey, plan: Plan, index: int, id_version: str | None
) -> Alert | Rejected:
    """Pull the scoring fields out of one projected record and decode its three stamps."""
    located = plan.located
    alert_id: str | None = None
    try:
        alert_id = _identifier(record, located, "alert_id")
        if survey == "ztf":
            object_id = _identifier(record, located, "object_id")
            version = str(_first(record, located, "version") or plan.version or "unknown")
            ra = _number(record, located, "ra")
            dec = _number(record, located, "dec")
            observed_mjd = _number(record, located, "time") - _JD_TO_MJD
            magnitude: float | None = _number(record, located, "magnitude")
        else:
            object_id = _rubin_object(record, located)
            fink_version = _first(record, located, "version")
            match = VERSION_IN_NAME.search(fink_version) if isinstance(fink_version, str) else None
            version = (
                f"{int(match[1])}.{int(match[2])}"
                if match
                else plan.version or id_version or "unknown"
            )
            ra = _number(record, located, "ra")
            dec = _number(record, located, "dec")
            observed_mjd = _number(record, located, "time")
            flux = _first(record, located, "magnitude")
            magnitude = (
                _NJY_AB_ZEROPOINT - 2.5 * math.log10(flux)
                if flux is not None and flux > 0 and math.isfinite(flux)
                else None  # a negative difference flux (or none) has no magnitude
            )
        images, stamps = _stamps(record, located)
    except _Refused as refused:
        return Rejected(refused.reason, refused.message, index, alert_id)
    return Alert(
        alert_id=alert_id,
        object_id=object_id,
        survey=survey,
        schema_version=version,
        ra=ra,
        dec=dec,
        magnitude=magnitude,
        observed_mjd=observed_mjd,
        cutouts=(images[0], images[1], images[2]),
        cutout_bytes=(stamps[0], stamps[1], stamps[2]),
    )


def _first(record: dict[str, Any], located: Located, role: str) -> Any:
    """The role's value from the first of its paths that is not null, else None."""
    for path in located.paths.get(role, ()):
        value: Any = record
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
            if value is None:
                break
        if value is not None:
            return value
    return None


def _required(record: dict[str, Any], located: Located, role: str) -> Any:
    value = _first(record, located, role)
    if value is None:
        paths = [".".join(path) for path in located.paths[role]]
        verb = "is" if len(paths) == 1 else "are all"
        raise _Refused("missing_field", f"{' and '.join(paths)} {verb} null")
    return value


def _identifier(record: dict[str, Any], located: Located, role: str) -> str:
    text = str(_required(record, located, role)).strip()
    if not text:
        raise _Refused("missing_field", f"{located.label(role)} is an empty string")
    return text


def _number(record: dict[str, Any], located: Located, role: str) -> float:
    return float(_required(record, located, role))


def _rubin_object(record: dict[str, Any], located: Located) -> str:
    # Rubin writes 0, not null, for "no such object": a solar-system source has diaObjectId 0
    # and its ssObjectId, a static-sky source ssObjectId 0. Fink turns the absent diaObject
    # record into a record of nulls. Associated with nothing yet: still an alert worth scoring.
    for path in located.paths.get("object_id", ()):
        value: Any = record
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value and str(value).strip() not in ("", "0"):  # None and 0 mean "not associated"
            return str(value).strip()
    return ""


def _stamps(record: dict[str, Any], located: Located) -> tuple[list[np.ndarray], list[bytes]]:
    stamps: list[bytes] = []
    images: list[np.ndarray] = []
    for field in _CUTOUT_FIELDS:
        value: Any = _first(record, located, field)
        if isinstance(value, dict):  # ZTF: {"fileName": ..., "stampData": bytes}
            value = value.get(located.stamp_keys.get(field, "stampData"))
        try:
            images.append(decode_stamp(value))
        except CutoutError as exc:
            raise _Refused(exc.reason, f"{field}: {exc.message}") from None
        stamps.append(bytes(value))  # no copy: fastavro gives bytes, decode_stamp checked them
    return images, stamps
