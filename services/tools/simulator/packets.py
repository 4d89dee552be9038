"""Encoding alerts exactly the way ZTF does: one Avro object container per alert, whose header
carries the real ZTF 4.02 writer schema (``schemas/ztf/alert.v4.02.avsc``, byte for byte as in
real packets), and cutouts that are gzip-compressed single-HDU FITS files with ZTF's own header
cards (``SIMPLE  =  T`` off the fixed-format column, BITPIX=-32, BUNIT='DN').

The container is written here rather than by ``fastavro.writer`` because fastavro rewrites the
schema JSON (field order, full names) and draws its own sync marker; we want ZTF's header text and
a sync marker from the simulation's random generator, so that a seed fixes every byte. Records
are still encoded by fastavro, against the parsed schema.
"""

from __future__ import annotations

import functools
import io
import json
import struct
import types
import zlib
from typing import Any, Final

import fastavro
import numpy as np

from services.common.schemas import SCHEMA_DIR

__all__ = [
    "SCHEMA_VERSION",
    "container",
    "fits_stamp",
    "gzip_member",
    "record_fields",
    "schema",
    "schema_text",
]

SCHEMA_VERSION: Final = "4.02"
SCHEMA_PATH: Final = SCHEMA_DIR / "ztf" / f"alert.v{SCHEMA_VERSION}.avsc"

_MAGIC: Final = b"Obj\x01"
_BLOCK: Final = 2880
_CARD: Final = 80
# The exact cards of a real ZTF 63x63 stamp header (SIMPLE's value is not right-justified)
_ZTF_CARDS: Final = (
    "SIMPLE  =  T",
    "BITPIX  =                  -32",
    "NAXIS   =                    2",
    "NAXIS1  = {width:20d}",
    "NAXIS2  = {height:20d}",
    "BUNIT   = 'DN      '",
    "END",
)
# gzip member header: magic, deflate, no flags; then mtime; XFL=0, OS=3 (Unix) as ZTF writes
_GZIP_FLAGS: Final = b"\x1f\x8b\x08\x00"
_GZIP_TAIL: Final = b"\x00\x03"
_DEFLATE_LEVEL: Final = 1  # ISA-L level 1 compresses stamps as well as zlib -9, ~15x faster

_deflater: types.ModuleType
try:  # ISA-L deflate: a declared dependency (services.common.cutouts gunzips with it too)
    from isal import isal_zlib

    _deflater = isal_zlib
except ImportError:  # pragma: no cover - same bytes format, slower
    _deflater = zlib


@functools.cache
def schema_text() -> bytes:
    """The writer schema as ZTF puts it in the container header (``json.dumps`` of the file)."""
    return json.dumps(json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))).encode()


@functools.cache
def schema() -> Any:
    """The parsed writer schema (parsed once: the JSON is 27 KB)."""
    return fastavro.parse_schema(json.loads(schema_text()))


@functools.cache
def record_fields(name: str) -> tuple[str, ...]:
    """Field names of the record that top-level field ``name`` holds (through null unions and
    arrays), e.g. ``record_fields("candidate")``."""
    top = json.loads(schema_text())
    (node,) = (field["type"] for field in top["fields"] if field["name"] == name)
    while not (isinstance(node, dict) and node.get("type") == "record"):
        if isinstance(node, list):
            (node,) = (branch for branch in node if branch != "null")
        elif isinstance(node, dict) and node.get("type") == "array":
            node = node["items"]
        else:
            raise ValueError(f"{name} does not hold a record")
    return tuple(field["name"] for field in node["fields"])


@functools.cache
def _header_prefix() -> bytes:
    """Magic and metadata map of every packet's header; the sync marker follows."""
    out = io.BytesIO()
    out.write(_MAGIC)
    out.write(_long(2))  # one map block of two entries, in ZTF's order
    for key, value in ((b"avro.codec", b"null"), (b"avro.schema", schema_text())):
        out.write(_long(len(key)) + key)
        out.write(_long(len(value)) + value)
    out.write(_long(0))
    return out.getvalue()


def container(records: list[dict[str, Any]], sync: bytes) -> bytes:
    """One Avro object container (codec null, one block) holding ``records``."""
    if len(sync) != 16:
        raise ValueError("an Avro sync marker is 16 bytes")
    body = io.BytesIO()
    parsed = schema()
    for record in records:
        fastavro.schemaless_writer(body, parsed, record)
    data = body.getvalue()
    return b"".join((_header_prefix(), sync, _long(len(records)), _long(len(data)), data, sync))


def fits_stamp(image: np.ndarray) -> bytes:
    """A 2-D float32 image as ZTF's uncompressed single-HDU FITS file.

    >>> raw = fits_stamp(np.zeros((63, 63), np.float32))
    >>> len(raw), raw[:12]
    (20160, b'SIMPLE  =  T')
    """
    height, width = image.shape
    header = _fits_header(width, height)
    data = np.ascontiguousarray(image, dtype=">f4").tobytes()
    return header + data + b"\0" * (-len(data) % _BLOCK)


def gzip_member(raw: bytes, mtime: int) -> bytes:
    """``raw`` as a gzip file with a fixed header (so the bytes depend on ``mtime`` only)."""
    deflated = _deflater.compress(raw, _DEFLATE_LEVEL, -15)
    trailer = struct.pack("<II", zlib.crc32(raw), len(raw) & 0xFFFFFFFF)
    return b"".join(
        (_GZIP_FLAGS, struct.pack("<I", mtime & 0xFFFFFFFF), _GZIP_TAIL, deflated, trailer)
    )


@functools.lru_cache(maxsize=8)
def _fits_header(width: int, height: int) -> bytes:
    cards = [card.format(width=width, height=height).ljust(_CARD) for card in _ZTF_CARDS]
    text = "".join(cards)
    return (text + " " * (-len(text) % _BLOCK)).encode("ascii")


def _long(value: int) -> bytes:
    """An Avro long: zigzag, then a little-endian base-128 varint.

    >>> _long(2), _long(-1), _long(300)
    (b'\\x04', b'\\x01', b'\\xd8\\x04')
    """
    encoded = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = encoded & 0x7F
        encoded >>= 7
        if encoded:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
