"""How much a packet may inflate to, and the one bounded-inflate helper every step goes through.

Avro container blocks (deflate, snappy) and FITS stamps (gzip) are inflated here with an upper
bound on the output, so a small hostile packet never becomes gigabytes: ``decompressobj`` with
``max_length`` stops at the bound instead of inflating the whole bomb first. The bounds come from
the real alerts (``../shared/data/alerts``: 7 ZTF, 156 Fink and 738 ztf-real ZTF alerts, 7 Rubin):

- per stamp, :data:`MAX_STAMP_PIXELS` and :data:`MAX_STAMP_BYTES` (gunzipped), checked in
  :mod:`services.common.cutouts`;
- per message, :func:`message_budget`: every byte that blocks and stamps inflate to, together,
  counted by an :class:`InflationBudget`. Without it a 372 kB container of 40 records whose
  stamps are each just under the per-stamp caps would still inflate to ~120 MB.

A refusal is a reason, never an exception out of ``decode_message``: ``too_large`` and
``too_many_pixels`` for one stamp (its record is dead-lettered), ``message_too_large`` for the
message (the whole of it, like any other hostile framing).
"""

from __future__ import annotations

import types
import zlib
from typing import Final, Literal

__all__ = [
    "GZIP",
    "MAX_STAMP_BYTES",
    "MAX_STAMP_PIXELS",
    "MESSAGE_FLOOR",
    "MESSAGE_INFLATION",
    "RAW_DEFLATE",
    "InflateError",
    "InflationBudget",
    "MessageTooLarge",
    "inflate",
    "message_budget",
]

#: The largest real stamp: ZTF's 63x63 (Rubin's are 30x30). 16x its area (a 252x252 stamp, 4x
#: the side) leaves room for larger cutouts of later schema versions and refuses anything that
#: only a corrupt or hostile header declares.
MAX_STAMP_PIXELS: Final = 16 * 63 * 63
#: Gunzipped bytes of one stamp. Real ones: ZTF 20,160 (63x63 float32 + a 2-block header; Rubin
#: stamps, 46,080 bytes with their variance and PSF HDUs, are not compressed). 1 MiB is 52x the
#: largest, and holds a MAX_STAMP_PIXELS image even as float64 (508 kB) with extra HDUs.
MAX_STAMP_BYTES: Final = 1 << 20
#: Per message: what blocks and stamps may inflate to, per byte of the message. The real samples
#: inflate to at most 2.4x their size (Fink's snappy part files; ZTF stamps barely compress, their
#: pixels are float noise), so 16x is a margin of 6.6 (tests/unit/test_decode_limits.py decodes
#: every sample with a quarter of it).
MESSAGE_INFLATION: Final = 16
#: ...plus this much for any message, so a small deflate-coded alert is never refused.
MESSAGE_FLOOR: Final = 1 << 20

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
    if limit <= 0:  # zlib reads max_length 0 as "no limit"
        raise InflateError("too_large", f"inflates to more than {limit} bytes")
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


def message_budget(payload_size: int) -> int:
    """Bytes a message of ``payload_size`` bytes may inflate to, blocks and stamps together.

    >>> message_budget(80_000)  # a single ZTF alert
    2328576
    """
    return MESSAGE_FLOOR + MESSAGE_INFLATION * payload_size


class MessageTooLarge(Exception):
    """The message as a whole inflates past its budget: refuse all of it."""


class InflationBudget:
    """Counts what one message inflates to, across its blocks and its stamps."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @property
    def room(self) -> int:
        return self.limit - self.used

    def inflate(self, data: bytes, *, wbits: int, limit: int) -> bytes:
        """:func:`inflate` within both ``limit`` (the item's own cap) and the message's room."""
        if self.room <= 0:
            raise self._exceeded()
        bound = min(limit, self.room)
        try:
            out = inflate(data, wbits=wbits, limit=bound)
        except InflateError as exc:
            if exc.kind == "too_large":
                self.used += bound  # the work done counts, refused or not
                if bound < limit:
                    raise self._exceeded() from None
            raise
        self.charge(len(out))
        return out

    def charge(self, size: int) -> None:
        """Count ``size`` inflated bytes; raise :class:`MessageTooLarge` past the limit."""
        self.used += size
        if self.used > self.limit:
            raise self._exceeded()

    def _exceeded(self) -> MessageTooLarge:
        return MessageTooLarge(
            f"blocks and stamps inflate to more than {self.limit} bytes, the most a message of "
            "this size can hold"
        )
