"""Avro schemas of our own topics, kept as files in ``schemas/`` and parsed once.

Records on our topics are schemaless Avro (compact, like the alerts themselves); the Kafka headers
name the schema and its version, so a consumer picks the reader schema without a registry.
"""

from __future__ import annotations

import io
import json
from functools import cache
from pathlib import Path
from typing import Any

import fastavro

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
USER_ALERT = "user_alert.v1"


@cache
def parsed(name: str) -> Any:
    """The parsed schema ``schemas/<name>.avsc`` (e.g. ``user_alert.v1``)."""
    path = SCHEMA_DIR / f"{name}.avsc"
    return fastavro.parse_schema(json.loads(path.read_text()))


def headers_for(name: str) -> tuple[tuple[str, bytes], ...]:
    schema = parsed(name)
    version = name.rsplit(".v", 1)[-1]
    return (
        ("ahunt-schema", str(schema["name"]).encode()),
        ("ahunt-schema-version", version.encode()),
    )


def encode(name: str, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed(name), record)
    return buf.getvalue()


def decode(name: str, payload: bytes) -> dict[str, Any]:
    return dict(fastavro.schemaless_reader(io.BytesIO(payload), parsed(name), None))  # type: ignore[arg-type]
