"""Shared fixtures. torch runs with one intra-op thread, as every worker does in production."""

from __future__ import annotations

import numpy as np
import pytest

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # the serving install has no torch; tests that need it import it themselves
    pass


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
