"""Fuzzed packets built from real ones, each with the damage done and what it must cause.

Every kind but three must be refused, and with a reason the damage implies (``REASONS``):
the test knows it without asking the decoder. Bit flips, partly-NaN stamps and (rarely)
truncations may leave a packet that is still a valid alert: those must be accounted for either
way (delivered, or a dead letter with a reason), never lost. Records are rewritten with fastavro
from single-record real ZTF packets and given ids of their own, so a fuzzed packet that decodes
cannot be mistaken for a good one.
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from typing import Any, Final

import fastavro
import numpy as np

#: kind -> share of the fuzzed packets
KINDS: Final[dict[str, float]] = {
    "truncated": 0.15,
    "bit_flips": 0.20,
    "wrong_magic": 0.10,
    "wrong_schema_id": 0.10,
    "stamp_bomb": 0.08,
    "empty": 0.05,
    "nan_stamp": 0.05,
    "nan_pixels": 0.05,
    "jpeg_stamp": 0.08,
    "out_of_range": 0.135,
    "huge": 0.005,
}
#: What each kind that must fail is refused for (any one of these).
REASONS: Final[dict[str, set[str]]] = {
    "truncated": {"truncated", "corrupt_avro"},
    "wrong_magic": {"bad_magic"},
    "wrong_schema_id": {"unknown_schema_id"},
    "stamp_bomb": {"too_large", "message_too_large"},
    "empty": {"empty_message"},
    "nan_stamp": {"all_non_finite"},
    "jpeg_stamp": {"not_fits"},
    "out_of_range": {"out_of_range"},
    "huge": {"bad_magic"},
}
MAY_PASS: Final = frozenset(KINDS) - frozenset(REASONS)
_MAGICS = (b"Obj\x02", b"PK\x03\x04", b"\x1f\x8b\x08\x00", b"\xff\xd8\xff\xe0", b"\x89PNG")
_FIELDS = (("jd", 1e300), ("ra", 400.0), ("dec", -95.0), ("magpsf", float("nan")))


@dataclass(frozen=True)
class Fuzzed:
    kind: str
    packet: bytes
    alert_id: str | None  # the id given to its record, where it has one


def _write(schema: Any, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.writer(buf, schema, [record])
    return buf.getvalue()


def _with_stamp(record: dict[str, Any], field: str, data: bytes) -> dict[str, Any]:
    return {**record, field: {**record[field], "stampData": data}}


def _nan_fits(stamp: bytes, share: float, rng: np.random.Generator) -> bytes:
    """The real gzipped FITS stamp with ``share`` of its float32 pixels set to NaN."""
    raw = bytearray(gzip.decompress(stamp))
    end = next(i for i in range(0, len(raw), 80) if raw[i : i + 8] == b"END     ")
    data_at = (end // 2880 + 1) * 2880
    pixels = (len(raw) - data_at) // 4
    for i in np.flatnonzero(rng.random(pixels) < share):
        raw[data_at + 4 * i : data_at + 4 * i + 4] = b"\x7f\xc0\x00\x00"  # big-endian NaN
    return gzip.compress(bytes(raw))


def _jpeg(rng: np.random.Generator) -> bytes:
    from PIL import Image  # comes with scikit-image

    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (63, 63), dtype=np.uint8)).save(out, format="JPEG")
    return out.getvalue()


def fuzz(
    originals: list[tuple[Any, dict[str, Any]]],
    framed: list[bytes],
    n: int,
    first_id: int,
    rng: np.random.Generator,
) -> list[Fuzzed]:
    """``n`` fuzzed packets, kinds drawn with :data:`KINDS`' shares (at least one each)."""
    kinds = list(KINDS)
    drawn = [*kinds, *rng.choice(kinds, size=max(0, n - len(kinds)), p=list(KINDS.values()))]
    bomb = gzip.compress(bytes(4 << 20))  # 4 MiB of zeros, 4x the per-stamp cap, in 4 kB
    out = []
    for i, kind in enumerate(drawn[:n]):
        schema, base = originals[int(rng.integers(len(originals)))]
        alert_id = first_id + i
        record = {**base, "candid": alert_id}
        packet = _write(schema, record)
        if kind == "truncated":
            packet = packet[: int(rng.integers(1, len(packet)))]
        elif kind == "bit_flips":
            damaged = bytearray(packet)
            for bit in rng.choice(len(damaged) * 8, size=int(rng.integers(1, 9)), replace=False):
                damaged[bit // 8] ^= 1 << int(bit % 8)
            packet = bytes(damaged)
        elif kind == "wrong_magic":
            packet = _MAGICS[int(rng.integers(len(_MAGICS)))] + packet[4:]
        elif kind == "wrong_schema_id":
            body = framed[int(rng.integers(len(framed)))][5:]
            packet = b"\x00" + int(rng.integers(10**6, 2**31)).to_bytes(4, "big") + body
        elif kind == "stamp_bomb":
            packet = _write(schema, _with_stamp(record, "cutoutDifference", bomb))
        elif kind == "empty":
            packet = b""
        elif kind in ("nan_stamp", "nan_pixels"):
            share = 1.0 if kind == "nan_stamp" else float(rng.uniform(0.05, 0.5))
            stamp = _nan_fits(record["cutoutScience"]["stampData"], share, rng)
            packet = _write(schema, _with_stamp(record, "cutoutScience", stamp))
        elif kind == "jpeg_stamp":
            packet = _write(schema, _with_stamp(record, "cutoutTemplate", _jpeg(rng)))
        elif kind == "out_of_range":
            field, value = _FIELDS[int(rng.integers(len(_FIELDS)))]
            packet = _write(schema, {**record, "candidate": {**record["candidate"], field: value}})
        elif kind == "huge":
            packet = b"\x89HUGE" + rng.bytes(int(rng.integers(1 << 20, 3 << 20)))
        out.append(Fuzzed(kind, packet, str(alert_id)))
    return out
