"""One cutout stamp as an 8-bit PNG for the desk, stretched the way astronomers look at them.

- ``zscale`` (default): IRAF's zscale limits (astropy's ``ZScaleInterval``), linear between them:
  the sky background is mid-grey and faint sources show, whatever the stamp's units (ZTF's are
  DN with a background of hundreds to thousands, Rubin's nJy around zero, a difference image is
  centred on 0 with negative residuals).
- ``asinh``: between the 1st and 99.5th percentiles with an asinh stretch (astropy's
  ``AsinhStretch(0.1)``), which keeps a bright core and a faint halo visible together (the
  stretch of the ``cutouts.png`` triplet).

Each stamp is stretched on its own. Rows are flipped so pixel (0, 0) is at the bottom left, as
ds9 and matplotlib's ``origin="lower"`` show FITS images. Missing pixels are black and take no
part in the limits: NaN, and fill values at float32's extremes (real ZTF stamps carry
-3.4e38 where a CCD had no data, up to a quarter of a template). The PNG is the stamp's native
size; the browser enlarges it without smoothing (``image-rendering: pixelated``), so a zoom never
invents detail.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, Literal

import numpy as np

from models.preprocess import usable
from services.common.cutouts import CutoutError, decode_stamp
from services.common.png import encode_png

Stretch = Literal["zscale", "asinh"]
STAMPS = ("science", "template", "difference")
Which = Literal["science", "template", "difference"]


@cache
def _visualization() -> Any:
    """astropy.visualization, imported once (about 0.3 s; ``warm`` does it at startup)."""
    import astropy.visualization

    return astropy.visualization


def warm() -> None:
    _visualization()


def valid_pixels(image: np.ndarray) -> np.ndarray:
    """The pixels that carry data (finite, not a fill value): the ones the model sees too.

    >>> valid_pixels(np.array([1.0, np.nan, -3.4e38, np.inf])).tolist()
    [True, False, False, False]
    """
    return usable(np.asarray(image, dtype=np.float64))


def stretch(image: np.ndarray, how: Stretch = "zscale") -> np.ndarray:
    """A float stamp -> uint8, flipped so row 0 is the bottom row.

    >>> img = np.arange(16, dtype=float).reshape(4, 4)
    >>> out = stretch(img)
    >>> out.dtype, int(out[-1, 0]), int(out[0, -1])
    (dtype('uint8'), 0, 255)
    >>> int(stretch(np.full((3, 3), np.nan)).max())
    0
    """
    x = np.asarray(image, dtype=np.float64)
    finite = valid_pixels(x)
    out = np.zeros(x.shape, np.uint8)
    if finite.any():
        vis = _visualization()
        values = x[finite]
        if how == "zscale":
            lo, hi = vis.ZScaleInterval().get_limits(values)
            norm = vis.ImageNormalize(vmin=lo, vmax=hi, stretch=vis.LinearStretch(), clip=True)
        else:
            lo, hi = vis.AsymmetricPercentileInterval(1.0, 99.5).get_limits(values)
            norm = vis.ImageNormalize(vmin=lo, vmax=hi, stretch=vis.AsinhStretch(0.1), clip=True)
        if not hi > lo:  # a flat stamp: mid-grey rather than a division by zero
            out[finite] = 128
        else:
            scaled = np.asarray(norm(values).filled(0.0), dtype=np.float64)
            out[finite] = np.round(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)
    return out[::-1]


def stamp_image(
    which: Which, originals: Sequence[bytes | None], preprocessed: np.ndarray | None
) -> np.ndarray | None:
    """The stamp to show: the original cutout while the scorer's cache has it, else the training
    set's preprocessed channel of the same name; ``None`` if neither (expired, never labelled).
    An original that does not decode raises ``CutoutError`` (the route answers 422)."""
    i = STAMPS.index(which)
    if any(o is not None for o in originals):
        raw = originals[i] if i < len(originals) else None
        if not raw:
            return None
        return decode_stamp(raw)
    if preprocessed is None:
        return None
    channels = [preprocessed] if preprocessed.ndim == 2 else list(preprocessed)
    return channels[i] if i < len(channels) else None


def stamp_png(image: np.ndarray, how: Stretch = "zscale") -> bytes:
    return encode_png(stretch(image, how))


__all__ = [
    "STAMPS",
    "CutoutError",
    "Stretch",
    "Which",
    "stamp_image",
    "stamp_png",
    "stretch",
    "valid_pixels",
]
