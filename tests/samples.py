"""Where the real sample packets are (../shared/data/alerts beside the repository, or
``AHUNT_SAMPLE_ALERTS``), and small helpers to load them."""

from __future__ import annotations

import copy
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(
    os.environ.get(
        "AHUNT_SAMPLE_ALERTS", Path(__file__).resolve().parents[1].parent / "shared/data/alerts"
    )
)


#: Real packets the decoder tests rewrite (each named for what it is, not picked by count).
ZTF_FILE = ROOT / "ztf/ztf_20250302_programid1_ZTF17aaarzyp_2982177112815010003.v4_02.avro"
ZTF_MULTI = ROOT / "ztf/datatest_avro_multi_alerts_other.avro"  # 3 records, schema 3.3
FINK_MULTI = ROOT / "ztf-fink/datatest_avro_multi_alerts.avro"  # Fink's topLevelRecord
FINK_SNAPPY = (
    ROOT / "ztf-fink/tests_sample.avro_part-00001-0f70696a-f8dd-40ab-89e7-e7f64c104e25-c000.avro"
)
RUBIN_FILE = ROOT / "rubin/datatest_lsst_part-2-918301.avro"  # Rubin v10.0 as Fink writes it
needs_samples = pytest.mark.skipif(
    not ROOT.is_dir(), reason=f"sample alerts not found at {ROOT} (set AHUNT_SAMPLE_ALERTS)"
)


def read_container(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A container's writer schema (as JSON) and its records, read by fastavro."""
    import fastavro

    reader = fastavro.reader(io.BytesIO(path.read_bytes()))
    schema = json.loads(reader.metadata["avro.schema"])
    return schema, [r for r in reader if isinstance(r, dict)]


def write_container(
    schema: dict[str, Any], records: list[dict[str, Any]], codec: str = "null"
) -> bytes:
    """A new container of ``records`` under ``schema``, written by fastavro."""
    import fastavro

    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(copy.deepcopy(schema)), records, codec=codec)
    return out.getvalue()


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
