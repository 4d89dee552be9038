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
from services.common.decoding.limits import InflationBudget
from services.common.decoding.plans import VERSION_IN_NAME, Plan
from services.common.decoding.results import Alert, Rejected, Survey

__all__ = ["DEC_RANGE", "EPOCHS", "MAGNITUDE_RANGE", "RA_RANGE", "to_alert"]

Path = tuple[str, ...]  # a field path as the writer spells it, e.g. ("candidate", "jd")

_CUTOUT_FIELDS: Final = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
_JD_TO_MJD: Final = 2400000.5
# AB magnitude of a flux in nJy: -2.5 log10(f * 1e-9 Jy / 3631 Jy) = 31.4 - 2.5 log10(f)
_NJY_AB_ZEROPOINT: Final = 31.4

# What the fields of a real alert can hold. A value outside is a broken or hostile record, and it
# must stop here: ``candidate.jd = 1e300`` used to pass and then fail the Avro encoding of the
# scorer's whole output batch (the alert time in ms overflows a long), on every replay.
RA_RANGE: Final = (0.0, 360.0)  # degrees, [0, 360): 360 is written 0
DEC_RANGE: Final = (-90.0, 90.0)  # degrees, both ends included
#: Nothing in the sky is brighter than the Sun (-26.7); nothing these surveys measure is fainter
#: than 40 (15 magnitudes beyond their single-exposure depth, ~21-24.5).
MAGNITUDE_RANGE: Final = (-30.0, 40.0)
#: Observation time (MJD) each survey's alerts can carry: ZTF from 2017-01-01 (before its first
#: light, 2017-11), Rubin from 2010-01-01 (its precursor-data sample alerts are reprocessed HSC
#: and DECam images from the 2010s), both to 2050-01-01 (past the end of the LSST survey).
EPOCHS: Final[dict[str, tuple[float, float]]] = {
    "ztf": (57754.0, 69807.0),
    "rubin": (55197.0, 69807.0),
}
_YEARS: Final = {"ztf": "(ZTF alerts: 2017 to 2050)", "rubin": "(Rubin alerts: 2010 to 2050)"}


class _Refused(Exception):
    """One record's rejection travelling up to :func:`to_alert`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def to_alert(
    record: dict[str, Any],
    survey: Survey,
    plan: Plan,
    index: int,
    id_version: str | None,
    budget: InflationBudget | None = None,
) -> Alert | Rejected:
    """Pull the scoring fields out of one projected record, check them, decode the stamps.

    The cheap checks come first, so a record with a bad field costs no gunzip.
    """
    located = plan.located
    alert_id: str | None = None
    low, high = EPOCHS[survey]
    try:
        alert_id = _identifier(record, located, "alert_id")
        ra = _within(*_number(record, located, "ra"), RA_RANGE, "degrees", high_open=True)
        dec = _within(*_number(record, located, "dec"), DEC_RANGE, "degrees")
        if survey == "ztf":
            object_id = _identifier(record, located, "object_id")
            version = str(_first(record, located, "version")[0] or plan.version or "unknown")
            jd, where = _number(record, located, "time")
            epoch = (low + _JD_TO_MJD, high + _JD_TO_MJD)
            observed_mjd = _within(jd, where, epoch, f"JD {_YEARS[survey]}") - _JD_TO_MJD
            magnitude: float | None = _within(
                *_number(record, located, "magnitude"), MAGNITUDE_RANGE, "mag"
            )
        else:
            object_id = _rubin_object(record, located)
            fink_version = _first(record, located, "version")[0]
            match = VERSION_IN_NAME.search(fink_version) if isinstance(fink_version, str) else None
            version = (
                f"{int(match[1])}.{int(match[2])}"
                if match
                else plan.version or id_version or "unknown"
            )
            observed_mjd = _within(
                *_number(record, located, "time"), (low, high), f"MJD {_YEARS[survey]}"
            )
            magnitude = _rubin_magnitude(*_first(record, located, "magnitude"))
        images, stamps = _stamps(record, located, budget)
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


def _first(record: dict[str, Any], located: Located, role: str) -> tuple[Any, Path]:
    """The role's value from the first of its paths that is not null (else None), and that
    path (joined with dots only when a message needs it: this runs ~10 times per record)."""
    for path in located.paths.get(role, ()):
        value: Any = record.get(path[0])
        if len(path) == 2:  # the layouts look one record deep at most
            value = value.get(path[1]) if isinstance(value, dict) else None
        if value is not None:
            return value, path
    return None, (located.label(role),)


def _required(record: dict[str, Any], located: Located, role: str) -> tuple[Any, Path]:
    value, where = _first(record, located, role)
    if value is None:
        paths = [".".join(path) for path in located.paths[role]]
        verb = "is" if len(paths) == 1 else "are all"
        raise _Refused("missing_field", f"{' and '.join(paths)} {verb} null")
    return value, where


def _identifier(record: dict[str, Any], located: Located, role: str) -> str:
    value, where = _required(record, located, role)
    text = str(value).strip()
    if not text:
        raise _Refused("missing_field", f"{'.'.join(where)} is an empty string")
    return text


def _number(record: dict[str, Any], located: Located, role: str) -> tuple[float, Path]:
    value, where = _required(record, located, role)
    number = float(value)  # the layout let only int, long, float and double through
    if not math.isfinite(number):
        raise _Refused("out_of_range", f"{'.'.join(where)} = {number} is not a finite number")
    return number, where


def _within(
    value: float, where: Path, bounds: tuple[float, float], unit: str, *, high_open: bool = False
) -> float:
    """``value`` if it lies within ``bounds``, else an ``out_of_range`` refusal naming it.

    >>> _within(1e300, ("candidate", "jd"), (1.0, 2.0), "JD")
    Traceback (most recent call last):
    ...
    services.common.decoding.records._Refused: candidate.jd = 1e+300 is outside [1.0, 2.0] JD
    """
    low, high = bounds
    if low <= value < high or (value == high and not high_open):
        return value
    interval = f"[{low}, {high}{')' if high_open else ']'}"
    raise _Refused("out_of_range", f"{'.'.join(where)} = {value!r} is outside {interval} {unit}")


def _rubin_magnitude(flux: Any, where: Path) -> float | None:
    """AB magnitude of Rubin's difference flux (nJy), or None where there is none to give."""
    if flux is None or math.isnan(flux):  # not measured
        return None
    if math.isinf(flux):
        raise _Refused("out_of_range", f"{'.'.join(where)} = {flux} is not a finite number")
    if flux <= 0:  # a negative difference flux is real, and has no magnitude
        return None
    magnitude: float = _NJY_AB_ZEROPOINT - 2.5 * math.log10(flux)
    if magnitude < MAGNITUDE_RANGE[0]:
        raise _Refused(
            "out_of_range", f"{'.'.join(where)} = {flux!r} nJy is brighter than any source"
        )
    # a flux this close to zero is a measurement of nothing: no magnitude, not a broken record
    return magnitude if magnitude <= MAGNITUDE_RANGE[1] else None


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


def _stamps(
    record: dict[str, Any], located: Located, budget: InflationBudget | None
) -> tuple[list[np.ndarray], list[bytes]]:
    stamps: list[bytes] = []
    images: list[np.ndarray] = []
    for field in _CUTOUT_FIELDS:
        value, _ = _first(record, located, field)
        if isinstance(value, dict):  # ZTF: {"fileName": ..., "stampData": bytes}
            value = value.get(located.stamp_keys.get(field, "stampData"))
        try:
            images.append(decode_stamp(value, budget=budget))
        except CutoutError as exc:
            raise _Refused(exc.reason, f"{field}: {exc.message}") from None
        stamps.append(bytes(value))  # no copy: fastavro gives bytes, decode_stamp checked them
    return images, stamps
