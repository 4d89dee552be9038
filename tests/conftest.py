"""Shared fixtures. torch runs with one intra-op thread, as every worker does in production."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import settings

# CI runs the same examples every time (a failure found locally is kept as a regression test
# instead of surfacing at random in someone else's submission).
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # the serving install has no torch; tests that need it import it themselves
    pass


# The real broker, Redis and sample fixtures, one set for the whole session (integration, deploy
# and end-to-end tests share them).
from tests.infra_fixtures import *  # noqa: E402, F403


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
