"""Cutout triplets as a PNG a person can look at, without plotting libraries (the serving image
carries none): asinh stretch between robust percentiles, stamps side by side, 8-bit grayscale."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import numpy as np


def stretch(stamp: np.ndarray) -> np.ndarray:
    """float stamp -> uint8 for the eye: asinh between the 1st and 99.5th percentile of the
    finite pixels, NaN shown as black.

    >>> stretch(np.array([[0.0, 1.0], [np.nan, 2.0]])).tolist()
    [[0, 196], [0, 255]]
    """
    x = np.asarray(stamp, dtype=np.float64)
    finite = np.isfinite(x)
    if not finite.any():
        return np.zeros(x.shape, np.uint8)
    lo, hi = np.percentile(x[finite], [1.0, 99.5])
    if hi <= lo:
        hi = lo + 1.0
    z = np.clip((np.where(finite, x, lo) - lo) / (hi - lo), 0.0, 1.0)
    y = np.arcsinh(10 * z) / np.arcsinh(10.0)
    return np.where(finite, np.round(y * 255), 0).astype(np.uint8)


def encode_png(gray: np.ndarray) -> bytes:
    """8-bit grayscale PNG bytes of a 2-D uint8 array."""
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError("need a 2-D uint8 image")
    h, w = gray.shape
    raw = b"".join(b"\x00" + gray[r].tobytes() for r in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + tag
            + data
            + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def triplet_png(stamps: Sequence[np.ndarray], scale: int = 4, gap: int = 4) -> bytes:
    """Science, template and difference side by side, each stretched on its own, enlarged
    ``scale`` times (nearest neighbour) so a 63x63 stamp is comfortable to look at."""
    tiles = [np.kron(stretch(s), np.ones((scale, scale), np.uint8)) for s in stamps]
    height = max(t.shape[0] for t in tiles)
    canvas = np.full(
        (height, sum(t.shape[1] for t in tiles) + gap * (len(tiles) - 1)), 40, np.uint8
    )
    x = 0
    for t in tiles:
        canvas[: t.shape[0], x : x + t.shape[1]] = t
        x += t.shape[1] + gap
    return encode_png(canvas)
