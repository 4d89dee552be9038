"""Arrays as bytes in Redis: float32 ``.npy`` (a header that carries shape and dtype, no pickle,
so bytes read back can never run code)."""

from __future__ import annotations

import io

import numpy as np


def stamp_bytes(stamp: np.ndarray) -> bytes:
    """``stamp`` (any shape) as float32 ``.npy`` bytes.

    >>> stamp_from_bytes(stamp_bytes(np.ones((2, 3)))).shape
    (2, 3)
    """
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(stamp, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def stamp_from_bytes(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)
