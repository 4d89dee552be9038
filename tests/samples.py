"""Where the real sample packets are (../shared/data/alerts beside the repository, or
``AHUNT_SAMPLE_ALERTS``), and small helpers to load them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("AHUNT_SAMPLE_ALERTS",
                           Path(__file__).resolve().parents[1].parent / "shared/data/alerts"))


def sample_files(*folders: str) -> list[Path]:
    if not ROOT.exists():
        pytest.skip(f"sample alerts not found at {ROOT} (set AHUNT_SAMPLE_ALERTS)")
    return sorted(p for f in folders for p in (ROOT / f).glob("*.avro"))
