"""Label-preserving augmentation applied per batch during training.

For sky stamps the exact symmetries are the 8 elements of the dihedral group D4 (90-degree
rotations and flips): the sky has no preferred orientation on the detector. Handwritten digits do
not share them (a rotated 6 is a 9), so the benchmarks use small shifts instead. Augmentation is
what lets a weighted sampler draw a rare anomaly many times without the network seeing the same
pixels again and again.
"""

from __future__ import annotations

from typing import Literal

import torch

Augmentation = Literal["none", "d4", "shift", "d4+shift"]
AUGMENTATIONS: tuple[Augmentation, ...] = ("none", "d4", "shift", "d4+shift")


def dihedral(x: torch.Tensor, element: int) -> torch.Tensor:
    """Apply element 0..7 of D4 to a batch (N, C, H, W): rotation by 90*(e % 4), flipped if e >= 4.

    >>> import torch
    >>> x = torch.arange(4.0).reshape(1, 1, 2, 2)
    >>> [dihedral(x, e).flatten().tolist() for e in (0, 1, 4)]
    [[0.0, 1.0, 2.0, 3.0], [1.0, 3.0, 0.0, 2.0], [1.0, 0.0, 3.0, 2.0]]
    """
    if element >= 4:
        x = torch.flip(x, dims=(3,))
    return torch.rot90(x, element % 4, dims=(2, 3))


def _random_d4(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    if x.shape[2] != x.shape[3]:
        raise ValueError("d4 augmentation needs square stamps")
    elements = torch.randint(0, 8, (x.shape[0],), generator=generator)
    out = torch.empty_like(x)
    for e in range(8):
        rows = elements == e
        if rows.any():
            out[rows] = dihedral(x[rows], e)
    return out


def _random_shift(x: torch.Tensor, generator: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    # Zero-padded shifts: zero is the background level after preprocessing.
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    out = torch.empty_like(x)
    for oy in range(2 * max_shift + 1):
        for ox in range(2 * max_shift + 1):
            rows = (dy == oy) & (dx == ox)
            if rows.any():
                out[rows] = padded[rows, :, oy : oy + h, ox : ox + w]
    return out


def augment(x: torch.Tensor, kind: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """Randomly transform each item of the batch; ``generator`` makes it reproducible."""
    if kind in ("d4", "d4+shift"):
        x = _random_d4(x, generator)
    if kind in ("shift", "d4+shift"):
        x = _random_shift(x, generator)
    return x
