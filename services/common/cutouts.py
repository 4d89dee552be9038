"""FITS cutout stamps -> 2-D float32 arrays, fast, and bit-identical to astropy.

Every alert carries three stamps (science, template, difference). Decoding them with astropy
costs ~1.4 ms per alert, more than the network that scores them, so :func:`decode_stamp` reads
the few header cards a stamp needs (SIMPLE, BITPIX, NAXIS, NAXISn, BZERO, BSCALE, BLANK, END)
and hands the data unit to ``np.frombuffer``. The contract tests check it against astropy, bit
for bit, on every sample stamp. astropy stays an optional import, used only for headers the fast
path does not understand (tile-compressed images, random groups, unparseable mandatory cards).

Formats seen in real alerts (see docs in ../shared/docs/ALERTS.md):

- ZTF: a gzipped single-HDU FITS, BITPIX=-32, nominally 63x63 (smaller at a CCD edge). Its
  header writes ``SIMPLE  =  T`` off the fixed-format column, so cards are parsed free-format.
- Rubin: an uncompressed multi-extension FITS: primary HDU = the image in nJy, extension 1 =
  variance (``EXTNAME = 'UNCERT'``), extension 2 = the PSF (41x41, BITPIX=-64). We return the
  *first HDU that holds data*, which is the primary image for both surveys (an empty primary
  followed by an IMAGE extension is handled the same way).
- 2016-era ZTF test alerts: JPEG stamps, rejected as ``not_fits``.

Stamps are returned at their real size; padding to the network's input size (and masking the
padding) is ``models.preprocess.fit_stamp``'s job. NaN and +-inf pixels are returned unchanged
(the preprocessing masks every non-finite pixel); only a stamp with *no* finite pixel is rejected.

Bounded whatever the bytes: at most ``MAX_STAMP_BYTES`` are gunzipped and an image of more than
``MAX_STAMP_PIXELS`` is refused from its header, before its data is read (the caps and how they
follow from the real stamp sizes are in :mod:`services.common.decoding.limits`), so a gzip bomb
costs about a millisecond and a megabyte wherever a stamp is decoded: the scorer, the feedback
API's ``cutouts.png``, the clients.

Rejections raise :class:`CutoutError` whose ``reason`` is one of :data:`CUTOUT_REASONS`.
"""

from __future__ import annotations

import io
import math
import warnings
from typing import Any, Final

import numpy as np

from services.common.decoding.limits import (
    GZIP,
    MAX_STAMP_BYTES,
    MAX_STAMP_PIXELS,
    InflateError,
    InflationBudget,
    inflate,
)

__all__ = [
    "CUTOUT_REASONS",
    "MAX_DIMENSION",
    "MAX_STAMP_BYTES",
    "MAX_STAMP_PIXELS",
    "CutoutError",
    "decode_stamp",
    "decode_stamp_astropy",
    "sniff_format",
]

#: Why a stamp can be rejected. Stable strings: they end up in dead-letter envelopes and metrics.
CUTOUT_REASONS: Final[dict[str, str]] = {
    "missing_cutout": "the alert has no stamp (null field or absent)",
    "empty_cutout": "the stamp is zero bytes long, or gunzips to nothing",
    "not_fits": "the stamp is another format (JPEG, PNG, ...) or unrecognised bytes",
    "truncated_cutout": "the gzip stream or the FITS header ends early",
    "corrupt_cutout": "bad gzip data or CRC, or a FITS header that cannot be parsed",
    "too_large": "the stamp gunzips to more than MAX_STAMP_BYTES (52x the largest real stamp)",
    "too_many_pixels": "the stamp's image has more than MAX_STAMP_PIXELS pixels (16x the "
    "largest real stamp's area)",
    "bad_dimensions": "not 2-D after dropping length-1 axes, a dimension <= 0 or > "
    "MAX_DIMENSION, no HDU with data, or a data unit shorter than the header declares",
    "all_non_finite": "every pixel is NaN or +-inf",
    "unsupported_fits": "the fast path does not understand the header and astropy is missing",
}

#: Largest accepted stamp side. Real stamps are 30-63 pixels; anything near this is an attack or
#: a corrupt header, and refusing it bounds the memory one message can make us allocate.
MAX_DIMENSION: Final = 4096

_BLOCK: Final = 2880
_CARD: Final = 80
_MAX_HEADER_BLOCKS: Final = 64  # 2,304 cards; real stamp headers use 1-2 blocks

_DTYPES: Final[dict[int, np.dtype[Any]]] = {
    8: np.dtype(">u1"),
    16: np.dtype(">i2"),
    32: np.dtype(">i4"),
    64: np.dtype(">i8"),
    -32: np.dtype(">f4"),
    -64: np.dtype(">f8"),
}

_SIGNATURES: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\xff\xd8\xff", "JPEG image"),
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"II*\x00", "TIFF image"),
    (b"MM\x00*", "TIFF image"),
    (b"%PDF", "PDF document"),
    (b"\x1f\x8b", "gzip data"),
    (b"BZh", "bzip2 data"),
    (b"\xfd7zXZ\x00", "xz data"),
    (b"PK\x03\x04", "zip archive"),
    (b"Obj\x01", "Avro container"),
    (b"\x89HDF", "HDF5 file"),
    (b"\x93NUMPY", "numpy .npy file"),
    (b"SIMPLE", "FITS file"),
)


class CutoutError(ValueError):
    """A stamp that cannot become an image; ``reason`` is a key of :data:`CUTOUT_REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in CUTOUT_REASONS:  # a typo here would fork the metrics' label values
            raise AssertionError(f"unknown cutout rejection reason {reason!r}")
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class _NotUnderstood(Exception):
    """The fast path cannot read this header (not: the stamp is bad); astropy may."""


def sniff_format(data: bytes) -> str:
    """Name the format of ``data`` from its first bytes, for rejection messages.

    >>> sniff_format(b"\\xff\\xd8\\xff\\xe0\\x00\\x10JFIF")
    'JPEG image'
    >>> sniff_format(b'{"a": 1}')
    'text starting {"a": 1}'
    >>> sniff_format(bytes([0, 1, 2, 250]))
    'unrecognised bytes 000102fa'
    """
    for magic, name in _SIGNATURES:
        if data.startswith(magic):
            return name
    head = data[:16]
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "text starting " + head.decode("ascii")
    return "unrecognised bytes " + head.hex()


def decode_stamp(
    data: bytes | None, *, fallback: bool = True, budget: InflationBudget | None = None
) -> np.ndarray:
    """Decode one stamp (gzipped or plain FITS) to a 2-D native float32 array.

    ``fallback=False`` forbids the astropy path (the contract tests use it to prove the fast
    path handled every sample). Raises :class:`CutoutError` for every kind of bad input, and
    :class:`~services.common.decoding.limits.MessageTooLarge` when gunzipping would overrun
    ``budget`` (the message's, when the decoder passes one). Time and memory are bounded
    whatever the bytes: at most MAX_STAMP_BYTES are inflated and MAX_STAMP_PIXELS decoded.

    >>> stamp = _tiny_fits(np.arange(6, dtype=">f4").reshape(2, 3))
    >>> decode_stamp(stamp)
    array([[0., 1., 2.],
           [3., 4., 5.]], dtype=float32)
    """
    raw = _unwrap(data, budget)
    try:
        image = _decode_fast(raw)
    except _NotUnderstood as why:
        if not fallback:
            raise CutoutError("unsupported_fits", f"fast path: {why}") from None
        image = _decode_with_astropy(raw, why=str(why))
    return _finish(image)


def decode_stamp_astropy(data: bytes | None) -> np.ndarray:
    """The reference decoder: same contract as :func:`decode_stamp`, always through astropy."""
    return _finish(_decode_with_astropy(_unwrap(data), why="requested"))


# --- shared front and back ---------------------------------------------------------------------


def _unwrap(data: bytes | None, budget: InflationBudget | None = None) -> bytes:
    """Check presence, gunzip if needed and make sure what is left claims to be FITS."""
    if data is None:
        raise CutoutError("missing_cutout", "no stamp")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CutoutError("not_fits", f"stamp is a {type(data).__name__}, not bytes")
    data = bytes(data)
    if not data:
        raise CutoutError("empty_cutout", "stamp is 0 bytes")
    compressed = data[:2] == b"\x1f\x8b"
    raw = _gunzip(data, budget) if compressed else data
    if not raw:
        raise CutoutError("empty_cutout", "gzip stream holds 0 bytes")
    # Keyword columns 1-8 hold "SIMPLE" padded with blanks; be lenient about the rest of the card
    if not raw.startswith(b"SIMPLE"):
        what = sniff_format(raw)
        raise CutoutError("not_fits", ("gzipped " if compressed else "") + what)
    return raw


def _gunzip(data: bytes, budget: InflationBudget | None) -> bytes:
    try:  # bounded: a gzip bomb stops at the bound instead of inflating whole first
        if budget is not None:
            return budget.inflate(data, wbits=GZIP, limit=MAX_STAMP_BYTES)
        return inflate(data, wbits=GZIP, limit=MAX_STAMP_BYTES)
    except InflateError as exc:
        if exc.kind == "too_large":
            raise CutoutError(
                "too_large", f"gunzips to more than {MAX_STAMP_BYTES} bytes"
            ) from None
        if exc.kind == "truncated":
            raise CutoutError("truncated_cutout", f"gzip {exc.message}") from None
        raise CutoutError("corrupt_cutout", f"gzip: {exc.message}") from None


def _finish(image: np.ndarray) -> np.ndarray:
    """Squeeze, check the shape and finiteness, return a read-only native float32 copy."""
    if image.ndim != 2:
        squeezed = image.reshape([n for n in image.shape if n != 1])
        if squeezed.ndim != 2:
            raise CutoutError(
                "bad_dimensions",
                f"{image.ndim}-D data of shape {image.shape}: a stamp must be 2-D",
            )
        image = squeezed
    out = np.asarray(image, dtype=np.float32)
    if out is image:  # never alias a caller's (or astropy's) buffer
        out = out.copy()
    if not np.isfinite(out).any():
        raise CutoutError("all_non_finite", f"all {out.size} pixels are NaN or inf")
    out.flags.writeable = False  # alerts are frozen; a model must not scribble on shared stamps
    return out


# --- fast path ---------------------------------------------------------------------------------


def _decode_fast(raw: bytes) -> np.ndarray:
    """Walk the HDUs, return the data of the first one that has any, in its FITS dtype."""
    offset = 0
    index = 0
    while offset < len(raw):
        if index > 0 and not raw.startswith(b"XTENSION", offset):
            break  # bytes after the last HDU that are not an extension: readers ignore them
        cards, data_start = _read_header(raw, offset)
        if index == 0:
            if _logical(cards.get(b"SIMPLE")) is not True:
                raise _NotUnderstood("SIMPLE is not T")
            if _logical(cards.get(b"GROUPS")) is True:
                raise _NotUnderstood("random-groups primary HDU")
        else:
            xtension = _string(cards.get(b"XTENSION"))
            if xtension != "IMAGE":  # e.g. a tile-compressed image lives in a BINTABLE
                raise _NotUnderstood(f"HDU {index} is XTENSION={xtension!r}, not IMAGE")
        bitpix = _integer(cards, b"BITPIX")
        naxis = _integer(cards, b"NAXIS")
        if bitpix not in _DTYPES:
            raise _NotUnderstood(f"BITPIX={bitpix}")
        if not 0 <= naxis <= 999:
            raise CutoutError("bad_dimensions", f"HDU {index}: NAXIS={naxis}")
        dims = [_integer(cards, b"NAXIS%d" % axis) for axis in range(1, naxis + 1)]
        if naxis == 0:  # header-only HDU (a Rubin-style empty primary): the image comes later
            offset = data_start
            index += 1
            continue
        shape_text = "x".join(map(str, dims))
        if any(n <= 0 or n > MAX_DIMENSION for n in dims):
            raise CutoutError(
                "bad_dimensions",
                f"HDU {index}: NAXISn={shape_text}, each must be in 1..{MAX_DIMENSION}",
            )
        real_dims = [n for n in dims if n != 1]
        if len(real_dims) != 2:
            raise CutoutError(
                "bad_dimensions", f"HDU {index}: NAXIS={naxis} ({shape_text}), need a 2-D image"
            )
        dtype = _DTYPES[bitpix]
        count = math.prod(dims)
        if count > MAX_STAMP_PIXELS:
            raise CutoutError(
                "too_many_pixels", f"HDU {index}: {shape_text} is over {MAX_STAMP_PIXELS} pixels"
            )
        available = len(raw) - data_start
        if count * dtype.itemsize > available:
            raise CutoutError(
                "bad_dimensions",
                f"HDU {index}: header declares {shape_text} BITPIX={bitpix} "
                f"({count * dtype.itemsize} bytes) but only {available} bytes follow",
            )
        flat = np.frombuffer(raw, dtype=dtype, count=count, offset=data_start)
        # FITS axis 1 varies fastest, so numpy's (row, column) shape is (NAXIS2, NAXIS1)
        return _scale(flat, cards, bitpix).reshape(real_dims[::-1])
    raise CutoutError("bad_dimensions", f"no HDU with data in {index} header(s)")


def _scale(raw: np.ndarray, cards: dict[bytes, bytes], bitpix: int) -> np.ndarray:
    """Apply BSCALE/BZERO/BLANK exactly as astropy does, so the float32 results are identical.

    astropy computes in float32 for BITPIX 8/16/-32 and float64 for 32/64/-64, scales in place
    (multiply, then add), and turns BLANK pixels into NaN unless the pair is the FITS
    pseudo-unsigned convention (BSCALE=1, BZERO=2**(BITPIX-1), or -128 for BITPIX=8).
    """
    bscale = _real(cards, b"BSCALE", 1.0)
    bzero = _real(cards, b"BZERO", 0.0)
    blank = _integer(cards, b"BLANK") if bitpix > 0 and b"BLANK" in cards else None
    if bscale == 1 and bzero == 0 and blank is None:
        return raw  # the common case: '>f4' -> float32 is the only conversion left
    work = np.float32 if abs(bitpix) <= 16 or bitpix == -32 else np.float64
    data = raw.astype(work)
    if bscale != 1:
        np.multiply(data, bscale, out=data)
    if bzero != 0:
        np.add(data, bzero, out=data)
    pseudo_unsigned = bscale == 1 and (
        (bitpix == 8 and bzero == -128) or (bitpix in (16, 32, 64) and bzero == 2 ** (bitpix - 1))
    )
    if blank and not pseudo_unsigned:  # astropy ignores BLANK = 0 as well
        data[raw == blank] = np.nan
    return data


def _read_header(raw: bytes, start: int) -> tuple[dict[bytes, bytes], int]:
    """Cards of the header at ``start`` (keyword -> value field) and where its data begins."""
    cards: dict[bytes, bytes] = {}
    pos = start
    for _ in range(_MAX_HEADER_BLOCKS):
        if pos + _BLOCK > len(raw):
            raise CutoutError(
                "truncated_cutout",
                f"FITS header at byte {start} has no END before the stamp ends ({len(raw)} bytes)",
            )
        for card_start in range(pos, pos + _BLOCK, _CARD):
            keyword = raw[card_start : card_start + 8].rstrip()
            if keyword == b"END":
                return cards, pos + _BLOCK
            if raw[card_start + 8 : card_start + 10] == b"= " and keyword not in cards:
                cards[keyword] = raw[card_start + 10 : card_start + _CARD]
        pos += _BLOCK
    raise _NotUnderstood(f"no END in the first {_MAX_HEADER_BLOCKS} header blocks")


def _value(field: bytes) -> bytes:
    # Numeric and logical values never contain '/', so the comment split is safe for them
    return field.split(b"/", 1)[0].strip()


def _logical(field: bytes | None) -> bool | None:
    if field is None:
        return None
    value = _value(field)
    return True if value == b"T" else False if value == b"F" else None


def _string(field: bytes | None) -> str | None:
    if field is None:
        return None
    text = field.strip()
    if not text.startswith(b"'"):
        return None
    end = text.find(b"'", 1)
    return text[1:end].decode("ascii", "replace").rstrip() if end > 0 else None


def _integer(cards: dict[bytes, bytes], keyword: bytes) -> int:
    field = cards.get(keyword)
    if field is None:
        raise _NotUnderstood(f"no {keyword.decode()} card")
    try:
        return int(_value(field))
    except ValueError:
        raise _NotUnderstood(f"{keyword.decode()} = {_value(field)!r} is not an integer") from None


def _real(cards: dict[bytes, bytes], keyword: bytes, default: float) -> float:
    field = cards.get(keyword)
    if field is None:
        return default
    try:
        value = float(_value(field).replace(b"D", b"E"))  # FITS allows Fortran 1.0D0
    except ValueError:
        raise _NotUnderstood(f"{keyword.decode()} = {_value(field)!r} is not a number") from None
    if not math.isfinite(value):
        raise _NotUnderstood(f"{keyword.decode()} = {value}")
    return value


# --- astropy path ------------------------------------------------------------------------------


def _decode_with_astropy(raw: bytes, *, why: str) -> np.ndarray:
    """Fallback for headers the fast path does not understand, and the tests' reference."""
    try:
        from astropy.io import fits
    except ImportError:
        raise CutoutError(
            "unsupported_fits", f"fast path: {why}; astropy is not installed for the fallback"
        ) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # verification chatter on odd headers
            with fits.open(io.BytesIO(raw), memmap=False) as hdus:
                for hdu in hdus:
                    if not hdu.is_image:
                        continue
                    shape = tuple(hdu.shape)
                    if not shape:
                        continue
                    if any(n <= 0 or n > MAX_DIMENSION for n in shape):
                        raise CutoutError(
                            "bad_dimensions", f"astropy: HDU {hdu.name} has shape {shape}"
                        )
                    if math.prod(shape) > MAX_STAMP_PIXELS:  # before astropy reads the data
                        raise CutoutError(
                            "too_many_pixels",
                            f"astropy: HDU {hdu.name} has shape {shape}, over "
                            f"{MAX_STAMP_PIXELS} pixels",
                        )
                    data = hdu.data
                    if data is None:
                        continue
                    return np.array(data)  # detach from the HDU list we are about to close
    except CutoutError:
        raise
    except Exception as exc:  # astropy raises many types on garbage; all mean "corrupt"
        raise CutoutError(
            "corrupt_cutout", f"fast path: {why}; astropy: {type(exc).__name__}: {exc}"
        ) from None
    raise CutoutError("bad_dimensions", f"fast path: {why}; astropy found no image HDU with data")


def _tiny_fits(image: np.ndarray, **cards: float | int) -> bytes:
    """A minimal single-HDU FITS file, for doctests and tests (no astropy needed)."""
    bitpix = {"f4": -32, "f8": -64, "i2": 16, "i4": 32, "i8": 64, "u1": 8}[image.dtype.str[1:]]
    header = [
        "SIMPLE  =                    T",
        f"BITPIX  = {bitpix:20d}",
        f"NAXIS   = {image.ndim:20d}",
        *(f"NAXIS{i + 1:<3d}= {n:20d}" for i, n in enumerate(reversed(image.shape))),
        *(f"{key:<8s}= {value!r:>20}" for key, value in cards.items()),
        "END",
    ]
    text = "".join(card.ljust(_CARD) for card in header)
    text += " " * (-len(text) % _BLOCK)
    body = image.astype(image.dtype.newbyteorder(">")).tobytes()
    return text.encode("ascii") + body + b"\0" * (-len(body) % _BLOCK)
