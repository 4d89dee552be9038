"""Values as Redis stores them. Every client of the project answers bytes (``store.connect``
and the feedback API's client leave ``decode_responses`` off), while redis-py types its answers
``bytes | str``: :func:`data` and :func:`text` narrow them. Stamps are float32 ``.npy`` bytes (a
header that carries shape and dtype, no pickle, so bytes read back can never run code)."""

from __future__ import annotations

import io

import numpy as np


def data(value: bytes | str | None) -> bytes | None:
    """A Redis answer as bytes (``None`` stays ``None``).

    >>> data(b"x"), data(None)
    (b'x', None)
    """
    if value is None or isinstance(value, bytes):
        return value
    raise TypeError("a Redis client with decode_responses=True: this code needs bytes")


def text(value: bytes | str | None) -> str | None:
    """A Redis answer as text (``None`` stays ``None``).

    >>> text(b"ztf-0001"), text("ztf"), text(None)
    ('ztf-0001', 'ztf', None)
    """
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


def stamp_bytes(stamp: np.ndarray) -> bytes:
    """``stamp`` (any shape) as float32 ``.npy`` bytes.

    >>> stamp_from_bytes(stamp_bytes(np.ones((2, 3)))).shape
    (2, 3)
    """
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(stamp, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def stamp_from_bytes(stored: bytes | str) -> np.ndarray:
    raw = data(stored)
    assert raw is not None
    return np.load(io.BytesIO(raw), allow_pickle=False)
