"""Bounded decompression: the one helper every inflating step of the decoder goes through.

Avro container blocks (deflate) and FITS stamps (gzip) are both inflated here, with an upper
bound on the output, so a small hostile packet never becomes gigabytes: ``decompressobj`` with
``max_length`` stops at the bound instead of inflating the whole bomb first.
"""

from __future__ import annotations

import types
import zlib
from typing import Final, Literal

__all__ = ["GZIP", "RAW_DEFLATE", "InflateError", "inflate"]

_zlib: types.ModuleType
try:  # ISA-L inflates ~1.8x faster than zlib on stamps and gives the same bytes
    from isal import isal_zlib

    _zlib = isal_zlib
except ImportError:  # pragma: no cover - isal is a declared dependency; zlib is the safety net
    _zlib = zlib

RAW_DEFLATE: Final = -15  # Avro's deflate codec: a raw deflate stream, no header or checksum
GZIP: Final = 31  # gzip header and CRC32/size trailer (ZTF's stamps)


class InflateError(ValueError):
    """``kind``: ``corrupt`` (bad data or checksum), ``truncated`` (the stream ends early) or
    ``too_large`` (it would inflate past the bound)."""

    def __init__(self, kind: Literal["corrupt", "truncated", "too_large"], message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def inflate(data: bytes, *, wbits: int, limit: int) -> bytes:
    """Inflate one whole stream, never producing more than ``limit`` bytes.

    >>> import gzip
    >>> inflate(gzip.compress(b"abc" * 4), wbits=GZIP, limit=100)
    b'abcabcabcabc'
    >>> inflate(gzip.compress(bytes(10_000)), wbits=GZIP, limit=9_999)
    Traceback (most recent call last):
    ...
    services.common.decoding.limits.InflateError: inflates to more than 9999 bytes
    """
    inflater = _zlib.decompressobj(wbits)
    try:
        out: bytes = inflater.decompress(data, limit)
    except (zlib.error, _zlib.error) as exc:  # isal raises its own error type
        raise InflateError("corrupt", str(exc)) from None
    if inflater.unconsumed_tail or (not inflater.eof and len(out) >= limit):
        raise InflateError("too_large", f"inflates to more than {limit} bytes")
    if not inflater.eof:  # the deflate stream, or gzip's CRC/size trailer, is cut off
        raise InflateError("truncated", f"stream of {len(data)} bytes ends early ({len(out)} out)")
    return out
