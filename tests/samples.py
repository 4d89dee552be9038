"""Where the real sample packets are (../shared/data/alerts beside the repository, or
``AHUNT_SAMPLE_ALERTS``), and small helpers to load them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(
    os.environ.get(
        "AHUNT_SAMPLE_ALERTS", Path(__file__).resolve().parents[1].parent / "shared/data/alerts"
    )
)


def sample_files(*folders: str) -> list[Path]:
    if not ROOT.exists():
        pytest.skip(f"sample alerts not found at {ROOT} (set AHUNT_SAMPLE_ALERTS)")
    return sorted(p for f in folders for p in (ROOT / f).glob("*.avro"))


def unique_copies(payloads: list[bytes], copies: int) -> list[bytes]:
    """``copies`` versions of every single-record ZTF container, each with its own alert id
    (candid + copy * 2**61), so a test can tell every alert apart."""
    import io

    import fastavro

    out = []
    for k in range(copies):
        for payload in payloads:
            reader = fastavro.reader(io.BytesIO(payload))
            schema = reader.writer_schema
            records = []
            for record in reader:
                record = dict(record)
                record["candid"] = int(record["candid"]) + k * 2**61  # stays within int64
                records.append(record)
            buf = io.BytesIO()
            fastavro.writer(buf, schema, records)
            out.append(buf.getvalue())
    return out
