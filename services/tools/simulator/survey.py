"""One simulated night of ZTF alerts, in memory: labels -> stamps -> candidate -> Avro packet.

Pure: no files, no clock; everything comes from the ``rng`` a caller passes, so a seed fixes every
byte. Identifiers follow ZTF's conventions: ``nid`` counts nights, ``pid`` = nid, the exposure's
fraction of the UTC day (7 digits) and the readout quadrant; ``candid`` = pid, programid and the
row in the exposure's table; objectIds are ``ZTF<yy>`` + 7 letters. The truth label lives in
:class:`SimulatedAlert` (and truth.csv), never in the packet.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from services.tools.simulator import packets
from services.tools.simulator.config import SimulationConfig
from services.tools.simulator.scenes import Scenes, render

__all__ = [
    "BATCH",
    "MAX_PER_NIGHT",
    "NightDraft",
    "Schedule",
    "SimulatedAlert",
    "draft_alerts",
    "draw_labels",
    "iter_night",
    "object_id",
    "simulate_night",
    "simulate_stamps",
]

#: Alerts per night (good and broken together) that keep objectIds unique across nights.
MAX_PER_NIGHT: Final = 500_000
#: Alerts rendered and encoded together: big enough to vectorise, small enough for memory.
BATCH: Final = 500
_CADENCE_DAYS: Final = 45 / 86400  # one exposure every 45 s
_UNIX_EPOCH_JD: Final = 2440587.5
_ZTF_NID_EPOCH: Final = (2460736.5, 2982)  # 2025-03-02 was ZTF night 2982
_PROGRAM_ID: Final = 1  # public survey
_FILTER_NAMES: Final = {1: "zg", 2: "zr", 3: "zi"}
_ZEROPOINT: Final = {1: 26.30, 2: 26.20, 3: 25.75}
_APERTURE_FRACTION: Final = 0.85  # share of a point source's flux in the measuring aperture
_CUTOUTS: Final = ("cutoutScience", "cutoutTemplate", "cutoutDifference")


@dataclass(frozen=True, eq=False)
class SimulatedAlert:
    """One packet and its truth. ``stamps`` (3, 63, 63) float32 are what the packet decodes to."""

    alert_id: str  # candid, as a string (what the broker calls the alert id)
    object_id: str
    night: int
    label: str
    packet: bytes
    stamps: np.ndarray
    file_name: str


@dataclass(frozen=True)
class NightDraft:
    """A night's alerts before encoding: records can still be altered (see ``corrupt``)."""

    night: int
    scenes: Scenes
    records: list[dict[str, Any]]
    syncs: list[bytes]
    file_names: list[str]

    def packet(self, index: int) -> bytes:
        return packets.container([self.records[index]], self.syncs[index])

    def alerts(self) -> Iterator[SimulatedAlert]:
        for i, record in enumerate(self.records):
            yield SimulatedAlert(
                alert_id=str(record["candid"]),
                object_id=record["objectId"],
                night=self.night,
                label=self.scenes.labels[i],
                packet=self.packet(i),
                stamps=self.scenes.stamps[i],
                file_name=self.file_names[i],
            )


def simulate_night(
    config: SimulationConfig, night: int, n: int, rng: np.random.Generator
) -> list[SimulatedAlert]:
    """``n`` alerts of night ``night`` (1-based), classes drawn from ``config.class_mix``."""
    return list(iter_night(config, night, n, rng))


def iter_night(
    config: SimulationConfig, night: int, n: int, rng: np.random.Generator
) -> Iterator[SimulatedAlert]:
    """:func:`simulate_night` in batches of :data:`BATCH` (same alerts, bounded memory)."""
    labels = draw_labels(config, n, rng)
    schedule = Schedule.draw(config, night, 0, n, rng)
    for start in range(0, n, BATCH):
        draft = draft_alerts(
            config, schedule, labels[start : start + BATCH], rng, first_index=start
        )
        yield from draft.alerts()


def simulate_stamps(
    config: SimulationConfig, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    """Just the pixels: (n, 3, 63, 63) float32 science/template/difference and the labels.

    The cheap path for tests and training sets (no candidate, no Avro, no gzip).
    """
    labels = draw_labels(config, n, rng)
    return render(labels, config, rng).stamps, labels


def draw_labels(config: SimulationConfig, n: int, rng: np.random.Generator) -> list[str]:
    names, probabilities = config.probabilities()
    return [names[i] for i in rng.choice(len(names), size=n, p=probabilities)]


def object_id(year: int, number: int) -> str:
    """ZTF's object naming: ``ZTF`` + 2-digit year + 7 lowercase letters (base 26).

    >>> object_id(2026, 0), object_id(2026, 27)
    ('ZTF26aaaaaaa', 'ZTF26aaaaabb')
    """
    letters = []
    for _ in range(7):
        number, digit = divmod(number, 26)
        letters.append(chr(ord("a") + digit))
    if number:
        raise ValueError("object number does not fit in 7 letters")
    return f"ZTF{year % 100:02d}" + "".join(reversed(letters))


@dataclass(frozen=True)
class Schedule:
    """A night's exposures ``first_exposure``..: time, filter, field, pointing, zero point.

    Alert slot ``s`` of the night belongs to exposure ``s // config.alerts_per_exposure``;
    exposures follow each other every 45 s (wrapping within the night).
    """

    night: int
    nid: int
    midnight: float  # JD
    first_exposure: int
    day_fraction: np.ndarray
    filters: np.ndarray
    fields: np.ndarray
    field_ra: np.ndarray
    field_dec: np.ndarray
    zeropoints: np.ndarray

    @classmethod
    def draw(
        cls,
        config: SimulationConfig,
        night: int,
        first_slot: int,
        count: int,
        rng: np.random.Generator,
    ) -> Schedule:
        """The exposures that alert slots ``first_slot .. first_slot + count - 1`` fall in."""
        if night < 1:
            raise ValueError("nights are numbered from 1")
        if first_slot < 0 or first_slot + count > MAX_PER_NIGHT:
            raise ValueError(f"at most {MAX_PER_NIGHT} alerts per night")
        per = config.alerts_per_exposure
        first = first_slot // per
        size = (first_slot + max(count, 1) - 1) // per + 1 - first
        exposure = np.arange(first, first + size)
        filters = rng.choice([1, 2, 3], size=size, p=[0.45, 0.5, 0.05])
        sin_dec = rng.uniform(np.sin(np.radians(-28.0)), np.sin(np.radians(85.0)), size)
        midnight = config.start_jd + (night - 1)
        return cls(
            night=night,
            nid=_ZTF_NID_EPOCH[1] + round(midnight - _ZTF_NID_EPOCH[0]),
            midnight=midnight,
            first_exposure=first,
            day_fraction=0.12 + (exposure * _CADENCE_DAYS) % 0.33,
            filters=filters,
            fields=rng.integers(245, 881, size=size),
            field_ra=rng.uniform(0.0, 360.0, size=size),
            field_dec=np.degrees(np.arcsin(sin_dec)),
            zeropoints=np.array([_ZEROPOINT[int(f)] for f in filters])
            + rng.normal(0.0, 0.08, size),
        )


def draft_alerts(
    config: SimulationConfig,
    schedule: Schedule,
    labels: list[str],
    rng: np.random.Generator,
    *,
    first_index: int,
) -> NightDraft:
    """Render and describe the alerts in slots ``first_index``.. of the schedule's night."""
    n = len(labels)
    per_exposure = config.alerts_per_exposure
    slot = np.arange(first_index, first_index + n)
    exposure = slot // per_exposure - schedule.first_exposure
    if n and (exposure.min() < 0 or exposure.max() >= len(schedule.filters)):
        raise ValueError("alert slots outside the schedule's exposures")
    scenes = render(labels, config, rng)
    year = _calendar(schedule.midnight).year
    extras = _Extras.draw(rng, n)
    syncs = [bytes(row) for row in rng.integers(0, 256, size=(n, 16), dtype=np.uint8)]
    history_sizes = rng.integers(0, config.max_history + 1, size=n)
    stamp_be = scenes.stamps.astype(">f4")  # one conversion for the batch

    records: list[dict[str, Any]] = []
    file_names: list[str] = []
    for i in range(n):
        e = int(exposure[i])
        row = int(slot[i] % per_exposure)
        fraction = float(schedule.day_fraction[e])
        jd = schedule.midnight + fraction
        fid = int(schedule.filters[e])
        rcid = int(extras.rcid[i])
        pid = schedule.nid * 10**9 + round(fraction * 10**7) * 100 + rcid
        candid = pid * 10**6 + _PROGRAM_ID * 10**4 + row
        name = object_id(year, schedule.night * MAX_PER_NIGHT + int(slot[i]))
        dec = float(np.clip(schedule.field_dec[e] + extras.dec_offset[i], -89.9, 89.9))
        ra = float(
            (schedule.field_ra[e] + extras.ra_offset[i] / max(np.cos(np.radians(dec)), 0.05)) % 360
        )
        candidate = _candidate(
            scenes,
            extras,
            i,
            jd=jd,
            fid=fid,
            pid=pid,
            candid=candid,
            nid=schedule.nid,
            rcid=rcid,
            field=int(schedule.fields[e]),
            row=row,
            ra=ra,
            dec=dec,
            zeropoint=float(schedule.zeropoints[e]),
        )
        mtime = round((jd - _UNIX_EPOCH_JD) * 86400) + 600  # stamps are cut minutes later
        diff_name = "scimref" if candidate["isdiffpos"] == "t" else "refmsci"
        names = (
            f"candid{candid}_pid{pid}_targ_sci.fits.gz",
            f"candid{candid}_ref.fits.gz",
            f"candid{candid}_pid{pid}_targ_{diff_name}.fits.gz",
        )
        record: dict[str, Any] = {
            "schemavsn": packets.SCHEMA_VERSION,
            "publisher": "ZTF (www.ztf.caltech.edu)",
            "objectId": name,
            "candid": candid,
            "candidate": candidate,
            "prv_candidates": _history(candidate, int(history_sizes[i]), rng) or None,
            "fp_hists": None,
        }
        for k, field_name in enumerate(_CUTOUTS):
            stamp = packets.gzip_member(packets.fits_stamp(stamp_be[i, k]), mtime)
            record[field_name] = {"fileName": names[k], "stampData": stamp}
        records.append(record)
        date = _calendar(jd).strftime("%Y%m%d")
        file_names.append(f"ztf_{date}_programid{_PROGRAM_ID}_{name}_{candid}.avro")
    return NightDraft(schedule.night, scenes, records, syncs, file_names)


# --- candidate fields --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Extras:
    """Per-alert draws for the candidate fields that the pixels do not decide."""

    rcid: np.ndarray
    ra_offset: np.ndarray
    dec_offset: np.ndarray
    xpos: np.ndarray
    ypos: np.ndarray
    uniform: np.ndarray  # (n, 16) U(0, 1) for the minor fields
    normal: np.ndarray  # (n, 8) N(0, 1)
    ps1_ids: np.ndarray  # (n, 3)

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int) -> _Extras:
        return cls(
            rcid=rng.integers(0, 64, size=n),
            ra_offset=rng.uniform(-3.4, 3.4, size=n),
            dec_offset=rng.uniform(-3.4, 3.4, size=n),
            xpos=rng.uniform(32.0, 3040.0, size=n),
            ypos=rng.uniform(32.0, 3048.0, size=n),
            uniform=rng.random((n, 16)),
            normal=rng.standard_normal((n, 8)),
            ps1_ids=rng.integers(10**16, 2 * 10**17, size=(n, 3)),
        )


def _candidate(
    scenes: Scenes,
    extras: _Extras,
    i: int,
    *,
    jd: float,
    fid: int,
    pid: int,
    candid: int,
    nid: int,
    rcid: int,
    field: int,
    row: int,
    ra: float,
    dec: float,
    zeropoint: float,
) -> dict[str, Any]:
    """Every field of ZTF's ``candidate`` record, consistent with the stamps where they tell."""
    u = extras.uniform[i]
    g = extras.normal[i]
    flux = max(float(scenes.flux[i]), 1.0)
    flux_err = float(scenes.flux_err[i])
    limit = zeropoint - 2.5 * np.log10(5 * flux_err / _APERTURE_FRACTION)
    magpsf = float(np.clip(zeropoint - 2.5 * np.log10(flux / _APERTURE_FRACTION), 11.0, 23.0))
    sigmapsf = float(np.clip(1.0857 * flux_err / max(flux, flux_err), 0.003, 0.35))
    magap = magpsf + 0.08 * float(g[0])
    fwhm = float(scenes.fwhm[i])
    aimage, bimage = float(scenes.aimage[i]), float(scenes.bimage[i])
    nearest = float(scenes.nearest_distance[i])
    near_mag = zeropoint - 2.5 * np.log10(max(float(scenes.nearest_flux[i]), 1.0))
    star = bool(scenes.nearest_is_star[i])
    pa = 2 * np.pi * u[0]
    xpos, ypos = float(extras.xpos[i]), float(extras.ypos[i])
    quadrant = rcid % 4 + 1
    stamp = _calendar(jd)
    stamp_code = f"{stamp:%Y%m%d}{round((jd + 0.5) % 1 * 10**6):06d}"
    filter_name = _FILTER_NAMES[fid]
    return {
        "jd": jd,
        "fid": fid,
        "pid": pid,
        "diffmaglim": float(limit),
        "pdiffimfilename": f"ztf_{stamp_code}_{field:06d}_{filter_name}_c{rcid // 4 + 1:02d}_o_"
        f"q{quadrant}_scimrefdiffimg.fits",
        "programpi": "Kulkarni",
        "programid": _PROGRAM_ID,
        "candid": candid,
        "isdiffpos": "t" if scenes.positive[i] else "f",
        "tblid": row,
        "nid": nid,
        "rcid": rcid,
        "field": field,
        "xpos": xpos,
        "ypos": ypos,
        "ra": ra,
        "dec": dec,
        "magpsf": magpsf,
        "sigmapsf": sigmapsf,
        "chipsf": 0.5 + 4.0 * float(u[1]),
        "magap": magap,
        "sigmagap": sigmapsf * 1.1,
        "distnr": nearest,
        "magnr": float(near_mag),
        "sigmagnr": 0.01 + 0.05 * float(u[2]),
        "chinr": 0.3 + 2.0 * float(u[3]),
        "sharpnr": 0.02 * float(g[1]) if star else 0.1 + 0.4 * float(u[4]),
        "sky": float(scenes.diff_background[i]),
        "magdiff": magap - magpsf,
        "fwhm": fwhm,
        "classtar": 0.97 + 0.02 * float(u[5]) if star else 0.02 + 0.3 * float(u[5]),
        "mindtoedge": min(xpos, ypos, 3072 - xpos, 3080 - ypos),
        "magfromlim": float(limit) - magpsf,
        "seeratio": fwhm / float(scenes.template_fwhm[i]),
        "aimage": aimage,
        "bimage": bimage,
        "aimagerat": aimage / fwhm,
        "bimagerat": bimage / fwhm,
        "elong": aimage / bimage,
        "nneg": int(scenes.negative_pixels[i]),
        "nbad": 0,
        "rb": 0.3 + 0.7 * float(u[6]),
        "ssdistnr": -999.0,
        "ssmagnr": -999.0,
        "ssnamenr": "null",
        "sumrat": 0.8 + 0.2 * float(u[7]),
        "magapbig": magap - 0.05 * float(u[8]),
        "sigmagapbig": sigmapsf * 1.2,
        "ranr": ra + nearest / 3600 * np.cos(pa) / max(np.cos(np.radians(dec)), 0.05),
        "decnr": dec + nearest / 3600 * np.sin(pa),
        **_ps1_neighbours(extras, i, near_mag, nearest, star),
        "ndethist": 1,
        "ncovhist": 20 + int(1400 * u[9]),
        "jdstarthist": jd,
        "jdendhist": jd,
        "scorr": flux / max(flux_err, 1e-3),
        "tooflag": 0,
        "nmtchps": 2 + int(28 * u[10]),
        "rfid": field * 10**6 + fid * 10**5 + rcid * 10**3 + 228,
        "jdstartref": 2458150.7 + 60 * float(u[11]),
        "jdendref": 2458450.9 + 60 * float(u[11]),
        "nframesref": int(scenes.template_frames[i]),
        "rbversion": "t17_f5_c3",
        "dsnrms": 20 + 200 * float(u[12]),
        "ssnrms": 50 + 400 * float(u[12]),
        "dsdiff": -100 - 200 * float(u[13]),
        "magzpsci": zeropoint,
        "magzpsciunc": 2e-6 + 1e-5 * float(u[14]),
        "magzpscirms": 0.015 + 0.03 * float(u[14]),
        "nmatches": 500 + int(2500 * u[15]),
        "clrcoeff": (0.10 if fid == 2 else -0.06) + 0.02 * float(g[2]),
        "clrcounc": 5e-6,
        "zpclrcov": -3e-6,
        "zpmed": zeropoint + 0.05,
        "clrmed": 0.6 + 0.1 * float(g[3]),
        "clrrms": 0.18,
        "neargaia": nearest if star else 3 + 20 * float(u[2]),
        "neargaiabright": 5 + 50 * float(u[3]),
        "maggaia": float(near_mag) - 0.1 if star else 19.5 + float(u[4]),
        "maggaiabright": 11 + 3 * float(u[5]),
        "exptime": 30.0,
        "drb": 0.3 + 0.7 * float(u[7]),
        "drbversion": "d6_m7",
    }


def _ps1_neighbours(
    extras: _Extras, i: int, near_mag: float, nearest: float, star: bool
) -> dict[str, Any]:
    """The three nearest Pan-STARRS1 sources (the first is the nearest static source)."""
    g = extras.normal[i]
    out: dict[str, Any] = {}
    for k in range(3):
        mag = near_mag if k == 0 else 20.0 + float(extras.uniform[i, k + 8]) * 2
        colour = 0.3 + 0.2 * float(g[4 + k])
        out |= {
            f"objectidps{k + 1}": int(extras.ps1_ids[i, k]),
            f"sgmag{k + 1}": mag + colour,
            f"srmag{k + 1}": mag,
            f"simag{k + 1}": mag - 0.5 * colour,
            f"szmag{k + 1}": mag - 0.7 * colour,
            f"sgscore{k + 1}": (0.95 if star else 0.05) if k == 0 else 0.5,
            f"distpsnr{k + 1}": nearest + 0.05 if k == 0 else 4.0 + 5.0 * k,
        }
    return out


def _history(
    candidate: dict[str, Any], size: int, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """``size`` earlier non-detections (upper limits) of the same spot, oldest first."""
    if size == 0:
        return []
    earlier = np.sort(rng.uniform(1.0, 20.0, size=size))[::-1]
    limits = rng.uniform(19.3, 20.8, size=size)
    filters = rng.choice([1, 2], size=size)
    out = []
    for days, limit, fid in zip(earlier, limits, filters, strict=True):
        jd = float(candidate["jd"]) - float(days)
        nid = int(candidate["nid"]) - int(round(days))
        fraction = round((jd + 0.5) % 1 * 10**7)
        entry: dict[str, Any] = dict.fromkeys(packets.record_fields("prv_candidates"))
        entry |= {
            "jd": jd,
            "fid": int(fid),
            "pid": nid * 10**9 + fraction * 100 + int(candidate["rcid"]),
            "diffmaglim": float(limit),
            "programpi": candidate["programpi"],
            "programid": _PROGRAM_ID,
            "nid": nid,
            "rcid": candidate["rcid"],
            "field": candidate["field"],
            "magzpsci": _ZEROPOINT[int(fid)],
            "magzpsciunc": candidate["magzpsciunc"],
            "magzpscirms": candidate["magzpscirms"],
            "clrcoeff": candidate["clrcoeff"],
            "clrcounc": candidate["clrcounc"],
            "rbversion": candidate["rbversion"],
        }
        out.append(entry)
    return out


def _calendar(jd: float) -> dt.datetime:
    return dt.datetime(1970, 1, 1) + dt.timedelta(days=jd - _UNIX_EPOCH_JD)
