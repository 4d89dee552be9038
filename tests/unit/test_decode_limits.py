"""What a packet may hold: physical values at decode time, and bounded decompression.

Every case is built from a real packet (../shared/data/alerts): a field set to a value no real
alert can carry is refused naming the field; gzip-bomb stamps, stamps with too many pixels and
containers whose blocks or stamps together inflate past what a real packet holds are refused
with their own reason, after bounded work. The caps keep a stated margin over the real samples.
"""

from __future__ import annotations

import copy
import gzip
import io
import math
import struct
import tracemalloc
import zlib
from typing import Any

import numpy as np
import pytest

from services.common import cutouts
from services.common.alerts import REJECT_REASONS, Alert, Rejected, decode_message
from services.common.cutouts import CutoutError, decode_stamp
from services.common.decoding import limits
from services.feedback.handler import cutouts_png
from tests.samples import (
    ROOT,
    RUBIN_FILE,
    ZTF_FILE,
    ZTF_MULTI,
    needs_samples,
    read_container,
    write_container,
)

CUTOUTS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
MiB = 1 << 20


def _header(shape: tuple[int, int], bitpix: int = -32) -> bytes:
    cards = [
        "SIMPLE  =                    T",
        f"BITPIX  = {bitpix:20d}",
        "NAXIS   =                    2",
        f"NAXIS1  = {shape[1]:20d}",
        f"NAXIS2  = {shape[0]:20d}",
        "END",
    ]
    text = "".join(card.ljust(80) for card in cards)
    return (text + " " * (-len(text) % 2880)).encode("ascii")


def _gzipped_zeros(shape: tuple[int, int]) -> bytes:
    """A gzipped float32 FITS stamp of zeros, built in 1 MiB steps (a bomb never exists whole)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [packer.compress(_header(shape))]
    left = shape[0] * shape[1] * 4
    while left > 0:
        out.append(packer.compress(bytes(min(left, MiB))))
        left -= MiB
    return b"".join(out) + packer.flush()


def _peak_bytes(work: Any) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        result = work()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- physical values --------------------------------------------------------------------------


@needs_samples
@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("jd", 1e300, "candidate.jd = 1e+300 is outside"),  # broke Avro encoding downstream
        ("jd", 0.0, "candidate.jd = 0.0 is outside"),
        ("jd", 60000.5, "candidate.jd = 60000.5 is outside"),  # an MJD where a JD belongs
        ("jd", 2469808.5, "candidate.jd = 2469808.5 is outside"),  # 2050
        ("jd", math.nan, "candidate.jd = nan is not a finite number"),
        ("jd", math.inf, "candidate.jd = inf is not a finite number"),
        ("ra", 360.0, "candidate.ra = 360.0 is outside [0.0, 360.0)"),
        ("ra", -0.5, "candidate.ra = -0.5 is outside"),
        ("ra", math.nan, "candidate.ra = nan is not a finite number"),
        ("dec", 90.5, "candidate.dec = 90.5 is outside [-90.0, 90.0]"),
        ("dec", -math.inf, "candidate.dec = -inf is not a finite number"),
        ("magpsf", 99.0, "candidate.magpsf = 99.0 is outside [-30.0, 40.0]"),
        ("magpsf", -99.0, "candidate.magpsf = -99.0 is outside"),
        ("magpsf", math.nan, "candidate.magpsf = nan is not a finite number"),
    ],
    ids=lambda x: str(x),
)
def test_a_ztf_value_no_real_alert_holds_is_refused_naming_the_field(
    field: str, value: float, named: str
) -> None:
    schema, records = read_container(ZTF_MULTI)
    records = copy.deepcopy(records)
    records[1]["candidate"][field] = value
    results = decode_message(write_container(schema, records))
    assert [type(r) for r in results] == [Alert, Rejected, Alert]
    rejected = results[1]
    assert isinstance(rejected, Rejected)
    assert (rejected.reason, rejected.index) == ("out_of_range", 1)
    assert rejected.alert_id == str(records[1]["candid"])
    assert named in rejected.message, rejected.message


@needs_samples
@pytest.mark.parametrize(
    ("field", "value"), [("ra", 0.0), ("ra", 359.999999), ("dec", -90.0), ("dec", 90.0)]
)
def test_the_edges_of_the_sky_are_accepted(field: str, value: float) -> None:
    schema, records = read_container(ZTF_MULTI)
    records = copy.deepcopy(records)
    records[0]["candidate"][field] = value
    first = decode_message(write_container(schema, records))[0]
    assert isinstance(first, Alert) and getattr(first, field) == value


@needs_samples
@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("midpointMjdTai", 1e300, "diaSource.midpointMjdTai = 1e+300 is outside"),
        ("midpointMjdTai", 2461105.5, "diaSource.midpointMjdTai = 2461105.5 is outside"),  # JD
        ("midpointMjdTai", math.nan, "diaSource.midpointMjdTai = nan is not a finite"),
        ("ra", math.nan, "diaSource.ra = nan is not a finite number"),
        ("dec", -95.0, "diaSource.dec = -95.0 is outside"),
        ("psfFlux", math.inf, "diaSource.psfFlux = inf is not a finite number"),
        ("psfFlux", 1e30, "nJy is brighter than any source"),  # stored as float32
    ],
    ids=lambda x: str(x),
)
def test_a_rubin_value_no_real_alert_holds_is_refused_naming_the_field(
    field: str, value: float, named: str
) -> None:
    schema, records = read_container(RUBIN_FILE)
    records = copy.deepcopy(records[:2])
    records[0]["diaSource"][field] = value
    first, second = decode_message(write_container(schema, records))
    assert isinstance(first, Rejected) and (first.reason, first.index) == ("out_of_range", 0)
    assert named in first.message and f"diaSource.{field} = " in first.message, first.message
    assert isinstance(second, Alert)


@needs_samples
@pytest.mark.parametrize("flux", [-2074.9, 0.0, 1e-9, math.nan])
def test_a_rubin_flux_with_no_magnitude_is_not_an_error(flux: float) -> None:
    """Negative difference fluxes, zero, a flux consistent with nothing, an unmeasured one."""
    schema, records = read_container(RUBIN_FILE)
    records = copy.deepcopy(records[:1])
    records[0]["diaSource"]["psfFlux"] = flux
    [alert] = decode_message(write_container(schema, records))
    assert isinstance(alert, Alert) and alert.magnitude is None


# --- stamps -------------------------------------------------------------------------------------


@needs_samples
def test_gzip_bomb_stamps_in_a_real_packet_are_refused_after_bounded_work() -> None:
    """Three 4096x4096 stamps of zeros, ~65 kB gzipped each, ~67 MB each inflated: before the
    caps this packet decoded into ~200 MB and was scored as a valid alert."""
    schema, records = read_container(ZTF_FILE)
    record = copy.deepcopy(records[0])
    bomb = _gzipped_zeros((4096, 4096))
    for name in CUTOUTS:
        record[name]["stampData"] = bomb
    payload = write_container(schema, [record])
    assert len(payload) < 600_000
    [rejected], peak = _peak_bytes(lambda: decode_message(payload))
    assert isinstance(rejected, Rejected)
    assert (rejected.reason, rejected.index) == ("too_large", 0)
    assert rejected.message == f"cutoutScience: gunzips to more than {limits.MAX_STAMP_BYTES} bytes"
    assert rejected.alert_id == str(record["candid"])
    assert peak < 16 * MiB, peak


def test_stamps_with_more_pixels_than_any_real_one_are_refused() -> None:
    side = math.isqrt(limits.MAX_STAMP_PIXELS)  # 252: the largest square stamp accepted
    assert decode_stamp(_gzipped_zeros((side, side))).shape == (side, side)
    over = (side + 1, side)
    for stamp in (_gzipped_zeros(over), _header(over) + bytes(over[0] * over[1] * 4)):
        with pytest.raises(CutoutError) as caught:
            decode_stamp(stamp)
        assert caught.value.reason == "too_many_pixels"
        assert f"{side}x{side + 1} is over {limits.MAX_STAMP_PIXELS} pixels" in str(caught.value)
    # the header alone is enough to refuse: no data needs to follow it
    with pytest.raises(CutoutError, match="too_many_pixels"):
        decode_stamp(_header((2000, 2000)))


def test_the_astropy_fallback_refuses_too_many_pixels_before_reading_them() -> None:
    fits = pytest.importorskip("astropy.io.fits")
    image = np.zeros((300, 300), np.int16)
    out = io.BytesIO()
    hdus = fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(image, compression_type="GZIP_1")])
    hdus.writeto(out)
    with pytest.raises(CutoutError) as caught:
        decode_stamp(out.getvalue())  # tile-compressed: only astropy reads it
    assert caught.value.reason == "too_many_pixels"


@needs_samples
def test_rubin_stamps_with_too_many_pixels_are_refused() -> None:
    """Rubin's stamps are plain FITS (no gzip): the pixel cap is what bounds them."""
    schema, records = read_container(RUBIN_FILE)
    records = copy.deepcopy(records[:1])
    records[0]["cutoutTemplate"] = _header((400, 400)) + bytes(400 * 400 * 4)
    [rejected] = decode_message(write_container(schema, records))
    assert isinstance(rejected, Rejected) and rejected.reason == "too_many_pixels"
    assert rejected.message.startswith("cutoutTemplate: ")


# --- the message as a whole --------------------------------------------------------------------


@needs_samples
def test_many_stamps_each_under_the_caps_cannot_inflate_a_message_without_bound() -> None:
    """40 records of a real alert, each with three 252x252 stamps (~250 bytes gzipped, 254 kB
    inflated, each within every per-stamp cap): ~30 MB from a ~100 kB message."""
    schema, records = read_container(ZTF_MULTI)
    side = math.isqrt(limits.MAX_STAMP_PIXELS)
    stamp = _gzipped_zeros((side, side))
    many = []
    for k in range(40):
        record = copy.deepcopy(records[0])
        record["candid"] += k
        record["prv_candidates"] = None
        for name in CUTOUTS:
            record[name]["stampData"] = stamp
        many.append(record)
    payload = write_container(schema, many)
    assert len(payload) < 200_000
    [rejected] = decode_message(payload)
    assert isinstance(rejected, Rejected)
    assert (rejected.reason, rejected.index) == ("message_too_large", None)
    assert f"more than {limits.message_budget(len(payload))} bytes" in rejected.message
    # one such record alone is fine (its 762 kB fit the floor): it is the total that is refused
    assert all(isinstance(r, Alert) for r in decode_message(write_container(schema, many[:1])))


@needs_samples
@pytest.mark.parametrize("codec", ["deflate", "snappy"])
def test_a_container_block_that_inflates_past_the_message_budget_is_refused(codec: str) -> None:
    """One real record with a 24 MB column of zeros added: the block is the bomb."""
    schema, records = read_container(ZTF_FILE)
    schema = copy.deepcopy(schema)
    schema["fields"].append({"name": "padding", "type": "bytes"})
    record = {**records[0], "padding": bytes(24 * MiB)}
    payload = write_container(schema, [record], codec)
    assert len(payload) < 2 * MiB
    [rejected], peak = _peak_bytes(lambda: decode_message(payload))
    assert isinstance(rejected, Rejected)
    assert (rejected.reason, rejected.index) == ("message_too_large", None)
    assert peak < limits.message_budget(len(payload)) + 4 * MiB


@needs_samples
def test_every_real_sample_decodes_within_a_quarter_of_the_message_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The margin the caps claim: real packets inflate to well under a quarter of their budget
    (the largest, Fink's snappy part files, to ~15 % of it)."""
    monkeypatch.setattr(limits, "MESSAGE_INFLATION", limits.MESSAGE_INFLATION // 4)
    monkeypatch.setattr(limits, "MESSAGE_FLOOR", limits.MESSAGE_FLOOR // 4)
    decoded = 0
    for path in sorted(ROOT.glob("*/*.avro")):
        payload = path.read_bytes()
        if payload[:1] == b"\x00":
            continue  # Confluent-framed: no stamps, no blocks
        results = decode_message(payload)
        assert all(isinstance(r, Alert) for r in results), (path.name, results[:2])
        decoded += len(results)
    assert decoded


def test_new_refusals_are_reasons() -> None:
    for reason in ("too_large", "too_many_pixels", "message_too_large", "out_of_range"):
        assert reason in REJECT_REASONS


# --- the feedback API's picture ------------------------------------------------------------------


def _png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_cutouts_png_is_bounded_whatever_the_stamps() -> None:
    """GET /v1/alerts/{id}/cutouts.png draws the cached stamps: a bomb (a 2048x2048 stamp, 16 MB
    inflated, 4x enlarged) must draw as a black tile after bounded work, not as a 200 MB one."""
    bomb = _gzipped_zeros((2048, 2048))
    png, peak = _peak_bytes(lambda: cutouts_png([bomb, bomb, bomb], None))
    assert png is not None and _png_size(png) == (3 * 63 * 4 + 2 * 4, 63 * 4)
    assert peak < 16 * MiB, peak
    # a stamp at the pixel cap still draws, at a bounded size
    side = math.isqrt(limits.MAX_STAMP_PIXELS)
    largest = gzip.compress(_header((side, side)) + np.ones((side, side), ">f4").tobytes())
    png, peak = _peak_bytes(lambda: cutouts_png([largest, None, b"junk"], None))
    assert png is not None and _png_size(png)[1] == side * 4
    assert peak < 64 * MiB, peak


def test_the_stamp_caps_are_what_cutouts_uses() -> None:
    assert cutouts.MAX_STAMP_BYTES == limits.MAX_STAMP_BYTES
    assert cutouts.MAX_STAMP_PIXELS == limits.MAX_STAMP_PIXELS
