"""Bad input never crashes the decoder, and every kind of bad input gets its own reason.

Bad packets are made by mutating copies of real samples (../shared/data/alerts) with fastavro's
writer; bad stamps are built here byte by byte. Tests that need the samples skip without them.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import io
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import pytest

from services.common import cutouts
from services.common.alerts import (
    REJECT_REASONS,
    Alert,
    Rejected,
    SchemaSource,
    decode_message,
)
from services.common.cutouts import CUTOUT_REASONS, CutoutError, decode_stamp
from services.tools.decode import add_arguments
from services.tools.decode import main as decode_main
from tests.samples import (
    FINK_MULTI,
    FINK_SNAPPY,
    ROOT,
    RUBIN_FILE,
    ZTF_FILE,
    ZTF_MULTI,
    needs_samples,
    read_container,
    write_container,
)

JPEG_HEADER = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xdb"


def _only(results: list[Alert | Rejected]) -> Rejected:
    assert len(results) == 1, results
    [result] = results
    assert isinstance(result, Rejected), result
    return result


def _nullable_cutouts(schema: dict[str, Any]) -> dict[str, Any]:
    """The same writer schema with every cutout field nullable (ZTF 3.3 files declare them not)."""
    schema = copy.deepcopy(schema)
    for field in schema["fields"]:
        if field["name"].startswith("cutout") and not isinstance(field["type"], list):
            field["type"] = ["null", field["type"]]
    return schema


def _assert_well_formed(results: list[Alert | Rejected]) -> None:
    assert results, "every message gives at least one result"
    for result in results:
        assert isinstance(result, Alert | Rejected)
        if isinstance(result, Rejected):
            assert result.reason in REJECT_REASONS
            assert result.message


# --- framing -----------------------------------------------------------------------------------


def test_empty_payload() -> None:
    assert _only(decode_message(b"")).reason == "empty_message"


@pytest.mark.parametrize(
    ("payload", "detected"),
    [
        (b"Obj\x02" + b"\x00" * 40, "unrecognised bytes"),
        (b'{"candid": 1, "objectId": "ZTF18abc"}', "text starting {"),
        (JPEG_HEADER, "JPEG image"),
        (gzip.compress(b"SIMPLE  = T"), "gzip data"),
        (b"\x01\x00\x00\x03\xe8garbage", "unrecognised bytes"),
    ],
)
def test_wrong_magic(payload: bytes, detected: str) -> None:
    rejected = _only(decode_message(payload))
    assert rejected.reason == "bad_magic"
    assert detected in rejected.message


def test_confluent_header_cut_short() -> None:
    rejected = _only(decode_message(b"\x00\x00\x03", SchemaSource()))
    assert rejected.reason == "truncated"


def test_unknown_schema_id_and_bad_schema_files(tmp_path: Path) -> None:
    packet = b"\x00" + (4242).to_bytes(4, "big") + b"\x02\x04"
    rejected = _only(decode_message(packet, SchemaSource(tmp_path)))
    assert rejected.reason == "unknown_schema_id" and "4242" in rejected.message

    (tmp_path / "4242.avsc").write_text("{ not json")
    assert _only(decode_message(packet, SchemaSource(tmp_path))).reason == "bad_schema"
    (tmp_path / "4242.avsc").write_text(json.dumps({"type": "record", "name": "x", "fields": 3}))
    assert _only(decode_message(packet, SchemaSource(tmp_path))).reason == "bad_schema"
    (tmp_path / "4242.avsc").write_text(json.dumps({"schema": "{}", "schemaType": "PROTOBUF"}))
    assert _only(decode_message(packet, SchemaSource(tmp_path))).reason == "bad_schema"


def test_a_schema_that_is_not_an_alert(tmp_path: Path) -> None:
    schema = {"type": "record", "name": "other", "fields": [{"name": "a", "type": "int"}]}
    (tmp_path / "7.avsc").write_text(json.dumps(schema))
    framed = b"\x00" + (7).to_bytes(4, "big") + b"\x02"
    assert _only(decode_message(framed, SchemaSource(tmp_path))).reason == "unknown_survey"
    assert _only(decode_message(write_container(schema, [{"a": 1}]))).reason == "unknown_survey"


@needs_samples
def test_confluent_record_cut_short_or_followed_by_junk(tmp_path: Path) -> None:
    schema, records = read_container(ZTF_FILE)  # a ZTF record in Confluent framing works too
    (tmp_path / "5.avsc").write_text(json.dumps(schema))
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), records[0])
    framed = b"\x00" + (5).to_bytes(4, "big") + body.getvalue()
    schemas = SchemaSource(tmp_path)
    [alert] = decode_message(framed, schemas)
    assert isinstance(alert, Alert) and alert.schema_version == "4.02"
    for cut in (6, 100, len(framed) // 2, len(framed) - 1):
        assert _only(decode_message(framed[:cut], schemas)).reason == "truncated", cut
    extra = _only(decode_message(framed + b"\x00\x00", schemas))
    assert extra.reason == "corrupt_avro" and "bytes left after the record" in extra.message


@needs_samples
@pytest.mark.parametrize("path", [ZTF_FILE, ZTF_MULTI, FINK_SNAPPY], ids=lambda p: p.name[:30])
def test_truncated_containers(path: Path) -> None:
    payload = path.read_bytes()
    # inside the magic, the metadata, the schema, the sync marker, the first block's data, the
    # last block's data, and the last block's sync marker: never a block boundary
    for cut in (3, 5, 20, 400, 3000, len(payload) // 3 + 7, len(payload) - 40, len(payload) - 5):
        rejected = _only(decode_message(payload[:cut]))
        assert rejected.reason == "truncated", (cut, rejected)
        assert rejected.index is None


@needs_samples
def test_sync_marker_and_snappy_crc_damage() -> None:
    payload = bytearray(FINK_SNAPPY.read_bytes())
    payload[-1] ^= 0xFF  # the last sync marker
    rejected = _only(decode_message(bytes(payload)))
    assert rejected.reason == "corrupt_avro" and "sync marker" in rejected.message

    payload = bytearray(FINK_SNAPPY.read_bytes())
    payload[-17] ^= 0x01  # the last byte of the last block's CRC32
    rejected = _only(decode_message(bytes(payload)))
    assert rejected.reason == "corrupt_avro" and "CRC32" in rejected.message


@needs_samples
@pytest.mark.parametrize(
    ("path", "flips", "window"),
    [
        (ZTF_FILE, 400, None),  # anywhere
        (ZTF_FILE, 200, 6000),  # concentrated in the header: schema JSON, sync marker, ...
        (FINK_MULTI, 60, None),
        (FINK_SNAPPY, 25, None),
        (RUBIN_FILE, 8, 400_000),  # Rubin records are big (~9 ms each): flip the first few
    ],
    ids=["ztf", "ztf-header", "fink-multi", "fink-snappy", "rubin"],
)
def test_random_bit_flips_never_raise(path: Path, flips: int, window: int | None) -> None:
    original = path.read_bytes()
    rng = np.random.default_rng(20260305)
    reasons: set[str] = set()
    for _ in range(flips):
        payload = bytearray(original)
        for _ in range(int(rng.integers(1, 4))):
            at = int(rng.integers(0, window or len(payload)))
            payload[at] ^= 1 << int(rng.integers(0, 8))
        results = decode_message(bytes(payload))
        _assert_well_formed(results)
        reasons |= {r.reason for r in results if isinstance(r, Rejected)}
    assert reasons, "some flips must have been caught"


# --- records that fail their own checks --------------------------------------------------------


@needs_samples
@pytest.mark.parametrize(
    ("mutate", "reason", "detail"),
    [
        (lambda r: r.update(cutoutTemplate=None), "missing_cutout", "cutoutTemplate: no stamp"),
        (
            lambda r: r["cutoutScience"].update(stampData=b""),
            "empty_cutout",
            "cutoutScience: stamp is 0 bytes",
        ),
        (
            lambda r: r["cutoutDifference"].update(stampData=JPEG_HEADER + b"\x00" * 64),
            "not_fits",
            "cutoutDifference: JPEG image",
        ),
        (
            lambda r: r["cutoutScience"].update(stampData=gzip.compress(JPEG_HEADER)),
            "not_fits",
            "cutoutScience: gzipped JPEG image",
        ),
        (
            lambda r: r["cutoutScience"].update(stampData=bytes(range(256)) * 4),
            "not_fits",
            "unrecognised bytes",
        ),
        (
            lambda r: r["cutoutTemplate"].update(stampData=r["cutoutTemplate"]["stampData"][:-9]),
            "truncated_cutout",
            "cutoutTemplate: gzip stream",
        ),
        (
            lambda r: r["cutoutTemplate"].update(
                stampData=r["cutoutTemplate"]["stampData"][:-8] + b"\x00" * 8
            ),
            "corrupt_cutout",
            "cutoutTemplate: gzip",
        ),
        (
            lambda r: (r.update(candid=None), r["candidate"].update(candid=None)),
            "missing_field",
            "candid and candidate.candid are all null",
        ),
    ],
    ids=["missing", "empty", "jpeg", "gzipped-jpeg", "garbage", "cut-gzip", "bad-crc", "no-id"],
)
def test_one_bad_record_in_a_multi_record_container(
    mutate: Callable[[dict[str, Any]], None], reason: str, detail: str
) -> None:
    schema, records = read_container(ZTF_MULTI)
    schema = _nullable_cutouts(schema)
    for field in schema["fields"]:
        if field["name"] == "candid":
            field["type"] = ["null", "long"]
        if field["name"] == "candidate":  # archives keep the id only here: both must be null
            for inner in field["type"]["fields"]:
                if inner["name"] == "candid":
                    inner["type"] = ["null", "long"]
    records = copy.deepcopy(records)
    mutate(records[1])
    results = decode_message(write_container(schema, records))
    assert [type(r) for r in results] == [Alert, Rejected, Alert]
    rejected = results[1]
    assert isinstance(rejected, Rejected)
    assert (rejected.reason, rejected.index) == (reason, 1)
    assert detail in rejected.message
    if reason != "missing_field":
        assert rejected.alert_id == str(records[1]["candid"])


@needs_samples
def test_rubin_record_without_a_stamp() -> None:
    schema, records = read_container(RUBIN_FILE)
    records = copy.deepcopy(records[:2])
    records[0]["cutoutDifference"] = None
    first, second = decode_message(write_container(schema, records))
    assert isinstance(first, Rejected) and first.reason == "missing_cutout"
    assert first.alert_id == str(records[0]["diaSourceId"])
    assert isinstance(second, Alert) and second.survey == "rubin"


@needs_samples
def test_other_codecs_and_empty_containers() -> None:
    schema, records = read_container(ZTF_MULTI)
    expected = [a.alert_id for a in decode_message(ZTF_MULTI.read_bytes()) if isinstance(a, Alert)]
    deflated = decode_message(write_container(schema, records, codec="deflate"))
    assert [a.alert_id for a in deflated if isinstance(a, Alert)] == expected
    assert (
        _only(decode_message(write_container(schema, records, "bzip2"))).reason
        == "unsupported_codec"
    )
    assert _only(decode_message(write_container(schema, []))).reason == "no_records"


# --- stamps ------------------------------------------------------------------------------------


def _fits(image: np.ndarray, **cards: float | int) -> bytes:
    return cutouts._tiny_fits(image, **cards)


def _header_fits(cards: list[str], body: bytes = b"") -> bytes:
    text = "".join(card.ljust(80) for card in [*cards, "END"])
    return (text + " " * (-len(text) % 2880)).encode() + body


def _reason(data: bytes | None) -> str:
    with pytest.raises(CutoutError) as caught:
        decode_stamp(data)
    assert caught.value.reason in CUTOUT_REASONS
    return caught.value.reason


STAMP = np.arange(63 * 63, dtype=">f4").reshape(63, 63)


def test_stamp_missing_empty_and_not_fits() -> None:
    assert _reason(None) == "missing_cutout"
    assert _reason(b"") == "empty_cutout"
    assert _reason(gzip.compress(b"")) == "empty_cutout"
    assert _reason(JPEG_HEADER) == "not_fits"
    assert _reason(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30) == "not_fits"
    assert _reason(b"\x00\x01garbage\xfe") == "not_fits"


def test_stamp_gzip_damage_and_bombs(monkeypatch: pytest.MonkeyPatch) -> None:
    packed = gzip.compress(_fits(STAMP))
    assert _reason(packed[: len(packed) // 2]) == "truncated_cutout"
    assert _reason(packed[:-8] + b"\xff" * 8) == "corrupt_cutout"  # CRC and size trailer
    assert _reason(packed[:10] + b"\xff" * 40 + packed[50:]) == "corrupt_cutout"
    monkeypatch.setattr(cutouts, "MAX_STAMP_BYTES", 10_000)
    assert _reason(packed) == "too_large"


def test_stamp_header_cut_before_end() -> None:
    assert _reason(_fits(STAMP)[:1000]) == "truncated_cutout"


@pytest.mark.parametrize(
    "cards",
    [
        ["NAXIS   =                    3", "NAXIS1  = 63", "NAXIS2  = 63", "NAXIS3  = 2"],
        ["NAXIS   =                    1", "NAXIS1  = 63"],
        ["NAXIS   =                    2", "NAXIS1  = -63", "NAXIS2  = 63"],
        ["NAXIS   =                    2", "NAXIS1  = 0", "NAXIS2  = 63"],
        ["NAXIS   =                    2", "NAXIS1  = 100000", "NAXIS2  = 63"],
        ["NAXIS   =                    2", "NAXIS1  = 4097", "NAXIS2  = 1"],
        ["NAXIS   =                   -1"],
        ["NAXIS   =           1000000000"],
        ["NAXIS   =                    0"],  # no HDU with data at all
    ],
    ids=[
        "naxis3",
        "naxis1",
        "negative",
        "zero",
        "huge",
        "over-limit",
        "naxis-neg",
        "naxis-huge",
        "no-data",
    ],
)
def test_stamp_bad_dimensions(cards: list[str]) -> None:
    header = _header_fits(
        ["SIMPLE  =                    T", "BITPIX  =                  -32", *cards]
    )
    assert _reason(header + STAMP.tobytes()) == "bad_dimensions"


def test_stamp_data_shorter_than_declared() -> None:
    whole = _fits(STAMP)
    header_length = 2880
    cut = whole[: header_length + STAMP.nbytes - 4]
    with pytest.raises(CutoutError, match="only 15872 bytes follow") as caught:
        decode_stamp(cut)
    assert caught.value.reason == "bad_dimensions"


def test_stamp_degenerate_axes_are_squeezed() -> None:
    cube = STAMP.reshape(1, 63, 63)
    assert np.array_equal(decode_stamp(_fits(cube)), STAMP)


def test_stamp_non_finite_pixels() -> None:
    assert _reason(_fits(np.full((63, 63), np.nan, dtype=">f4"))) == "all_non_finite"
    assert _reason(_fits(np.full((10, 12), np.inf, dtype=">f4"))) == "all_non_finite"
    mixed = np.full((5, 5), np.nan, dtype=">f4")
    mixed[0, 0], mixed[0, 1] = np.inf, -np.inf
    assert _reason(_fits(mixed)) == "all_non_finite"
    # a valid stamp with some NaN and inf pixels decodes unchanged; preprocessing masks them
    partial = STAMP.copy()
    partial[3, 4], partial[5, 6], partial[7, 8] = np.nan, np.inf, -np.inf
    image = decode_stamp(_fits(partial))
    assert np.array_equal(image, partial.astype(np.float32), equal_nan=True)
    assert image[5, 6] == np.inf and image[7, 8] == -np.inf


def test_rubin_style_multi_extension_stamps_take_the_first_image() -> None:
    image, variance = STAMP[:30, :30], np.ones((30, 30), dtype=">f4")
    primary = _fits(image)
    extension = _fits(variance).replace(
        b"SIMPLE  =                    T", b"XTENSION= 'IMAGE   '          ", 1
    )
    assert np.array_equal(decode_stamp(primary + extension), image)
    empty_primary = _header_fits(["SIMPLE  =                    T", "BITPIX  = 8", "NAXIS   = 0"])
    assert np.array_equal(decode_stamp(empty_primary + extension), variance)


@pytest.mark.parametrize(
    ("dtype", "cards"),
    [
        (">i2", {"BSCALE": 0.5, "BZERO": 100.25}),
        (">i2", {"BZERO": 32768}),  # FITS pseudo-unsigned 16-bit
        (">i2", {"BSCALE": 2.0, "BLANK": -5}),
        (">i2", {"BLANK": 7}),
        (">i4", {"BSCALE": 1e-3, "BZERO": -7.5, "BLANK": 9}),
        (">u1", {"BZERO": -128}),
        (">u1", {}),
        (">f8", {}),
        (">f4", {"BSCALE": 3.0, "BZERO": 1.5}),
    ],
)
def test_scaled_and_integer_stamps_match_astropy(dtype: str, cards: dict[str, float]) -> None:
    pytest.importorskip("astropy")
    rng = np.random.default_rng(7)
    if dtype.startswith(">f"):
        image = rng.normal(size=(17, 23)).astype(dtype)
    else:
        info = np.iinfo(np.dtype(dtype))
        image = rng.integers(info.min, info.max, size=(17, 23), endpoint=True).astype(dtype)
        if "BLANK" in cards:
            image.flat[::5] = cards["BLANK"]  # these pixels must come back as NaN
    data = _fits(image, **cards)
    fast = decode_stamp(data, fallback=False)
    reference = cutouts.decode_stamp_astropy(data)
    assert fast.dtype == reference.dtype == np.float32
    assert np.array_equal(fast, reference, equal_nan=True)
    assert fast.tobytes() == reference.tobytes()


def test_tile_compressed_stamp_falls_back_to_astropy() -> None:
    fits = pytest.importorskip("astropy.io.fits")
    # integers: astropy quantises floats when it tile-compresses them, integers are lossless
    image = np.random.default_rng(3).integers(-1000, 1000, size=(40, 50)).astype(np.int16)
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hdus = fits.HDUList(
            [fits.PrimaryHDU(), fits.CompImageHDU(image, compression_type="GZIP_1")]
        )
        hdus.writeto(out)
    data = out.getvalue()
    decoded = decode_stamp(data)  # via astropy
    assert decoded.dtype == np.float32 and np.array_equal(decoded, image)
    with pytest.raises(CutoutError) as caught:
        decode_stamp(data, fallback=False)
    assert caught.value.reason == "unsupported_fits"


def test_reason_names_are_checked() -> None:
    with pytest.raises(AssertionError):
        Rejected("no_such_reason", "typo")
    with pytest.raises(AssertionError):
        CutoutError("no_such_reason", "typo")


# --- ahunt decode ------------------------------------------------------------------------------


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    parser = argparse.ArgumentParser(prog="ahunt decode")
    add_arguments(parser)
    status = decode_main(parser.parse_args(argv))
    return status, capsys.readouterr().out.splitlines()


@needs_samples
def test_decode_command_json_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, lines = _run(["--json", str(ZTF_FILE), str(ZTF_MULTI)], capsys)
    assert status == 0
    assert lines[-1] == "4 decoded, 0 rejected"
    rows = [json.loads(line) for line in lines[:-1]]
    assert [row["index"] for row in rows] == [0, 0, 1, 2]
    assert all(row["ok"] and row["error"] is None for row in rows)
    assert rows[0]["alert_id"] == "2982177112815010003"
    assert rows[0]["object_id"] == "ZTF17aaarzyp"
    assert (rows[0]["survey"], rows[0]["schema_version"]) == ("ztf", "4.02")
    assert rows[0]["cutout_shapes"] == [[63, 63]] * 3

    garbage = tmp_path / "garbage.avro"
    garbage.write_bytes(b"not an alert")
    status, lines = _run(["--json", str(ZTF_FILE), str(garbage), str(tmp_path / "nope")], capsys)
    assert status == 1
    assert lines[-1] == "1 decoded, 2 rejected"
    bad = json.loads(lines[1])
    assert not bad["ok"] and bad["error"].startswith("bad_magic: ")
    assert json.loads(lines[2])["error"].startswith("unreadable: ")


@needs_samples
def test_decode_command_table_and_schemas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    confluent = ROOT / "confluent-framed/lsst.v10_0.avro"
    status, lines = _run([str(ZTF_FILE), str(confluent)], capsys)
    assert status == 1
    header, ok_row, bad_row, summary = lines
    assert header.split() == [
        "FILE",
        "#",
        "SURVEY",
        "VERSION",
        "ALERT_ID",
        "OBJECT_ID",
        "CUTOUTS",
        "STATUS",
    ]
    assert ok_row[header.index("SURVEY") :].startswith("ztf ")  # columns line up
    assert ok_row[header.index("VERSION") :].startswith("4.02 ")
    assert ok_row.endswith("63x63 63x63 63x63  ok")
    assert "unknown_schema_id: schema id 1000" in bad_row
    assert summary == "1 decoded, 1 rejected"

    schema, _ = read_container(ZTF_FILE)  # any schema: the id must merely be found
    (tmp_path / "1000.avsc").write_text(json.dumps(schema))
    status, lines = _run(["--json", "--schemas", str(tmp_path), str(confluent)], capsys)
    assert status == 1 and lines[-1] == "0 decoded, 1 rejected"
    assert json.loads(lines[0])["error"].startswith(("corrupt_avro", "truncated"))
