"""Real sky texture for the stamps: patches of the Hubble (eXtreme) Deep Field image that
scikit-image ships inside its wheel, so the static background has real galaxies in it.

The image is turned into a grey luminance, halved (its 0.04"/px galaxies become compact blobs at
a ZTF-like scale), blurred by ~1 px of seeing and reduced to what sits above its median (the JPEG
noise of the dark sky would otherwise show as fake structure). Patches are cut at random places
in one of the 8 orientations of the square, with one gather for a whole batch.
"""

from __future__ import annotations

import functools

import numpy as np

from services.tools.simulator.config import STAMP_SIZE

# (8, S, S) row / column offsets of the 8 symmetries of a square (rotations and flips).
_ROWS, _COLS = np.indices((STAMP_SIZE, STAMP_SIZE))
_LAST = STAMP_SIZE - 1
_DIHEDRAL_ROWS = np.stack(
    [_ROWS, _COLS, _LAST - _ROWS, _LAST - _COLS, _ROWS, _COLS, _LAST - _ROWS, _LAST - _COLS]
)
_DIHEDRAL_COLS = np.stack(
    [_COLS, _LAST - _ROWS, _LAST - _COLS, _ROWS, _LAST - _COLS, _ROWS, _COLS, _LAST - _ROWS]
)


@functools.cache
def deep_field() -> np.ndarray:
    """The processed field, float32, in units of the image's 8-bit grey levels above its median."""
    try:
        from skimage import data
    except ImportError:
        raise RuntimeError(
            "the simulator needs scikit-image (the `demo` extra): pip install -e '.[demo]'"
        ) from None
    from scipy.ndimage import gaussian_filter  # scipy comes with scikit-image

    rgb = data.hubble_deep_field().astype(np.float32)
    grey = rgb @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    height, width = (n // 2 * 2 for n in grey.shape)
    halved = grey[:height, :width].reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
    blurred = gaussian_filter(halved, sigma=0.8)
    field = np.clip(blurred - np.median(blurred), 0.0, None).astype(np.float32)
    field.flags.writeable = False
    return field


def patches(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random (S, S) patches of the field, each in a random orientation: (n, S, S)."""
    field = deep_field()
    top = rng.integers(0, field.shape[0] - STAMP_SIZE + 1, size=n)
    left = rng.integers(0, field.shape[1] - STAMP_SIZE + 1, size=n)
    orientation = rng.integers(0, 8, size=n)
    rows = top[:, None, None] + _DIHEDRAL_ROWS[orientation]
    cols = left[:, None, None] + _DIHEDRAL_COLS[orientation]
    return field[rows, cols]
