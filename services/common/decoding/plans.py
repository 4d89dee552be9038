"""One plan per writer schema: where the alert's fields are, the projection, a compiled reader.

Every ZTF message carries its writer schema (10-26 KB of JSON), and a stream repeats the same few,
so the work that depends only on the schema is done once and cached (:func:`plan_for`): parse
it, locate the alert's fields (:mod:`.layout`), build the projected reader schema
(:mod:`.projection`) and compile cavro's resolution of writer -> projection, which decodes the
projected alert about 2x faster than fastavro. Schemas cavro refuses are read by fastavro.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Final

import cavro
import fastavro

from services.common.decoding.layout import Located, locate
from services.common.decoding.projection import fullname, project_schema
from services.common.decoding.results import BrokenMessage, Survey

__all__ = ["Plan", "RecordReader", "plan_for"]

log = logging.getLogger(__name__)

VERSION_IN_NAME: Final = re.compile(r"v(\d+)_(\d+)")  # lsst.v10_0.alert, lsst.v10_0
_VERSION_IN_DOC: Final = re.compile(r"\bv(\d+)\.(\d+)\b")  # "Rubin Avro alert schema v10.0"


@dataclass(frozen=True)
class Plan:
    """Everything derived once from a writer schema: parsed writer, projection, survey."""

    writer: Any
    reader: Any
    version: str | None
    name: str
    located: Located
    fast: Any = None  # cavro's compiled resolution of writer -> reader, when cavro accepts both

    @property
    def survey(self) -> Survey | None:
        return self.located.survey

    def refuse_unusable(self, where: str) -> None:
        """Raise the whole-message rejection of a schema that is no alert or lacks a role."""
        if self.survey is None:
            raise BrokenMessage(
                "unknown_survey",
                f"{where} ({self.name or '?'}) has no ZTF or Rubin alert fields "
                "(candidate, candid, objectId / diaSource, diaSourceId)",
            )
        if self.located.missing:
            raise BrokenMessage(
                "missing_field",
                f"{where} ({self.name or '?'}) looks like a {self.survey.upper()} alert but "
                f"lacks {', '.join(self.located.missing)}",
            )

    def records(self, data: bytes | memoryview, start: int = 0) -> RecordReader:
        if self.fast is not None:
            return _CavroRecords(self.fast, data, start)
        return _FastavroRecords(self, data, start)


@functools.lru_cache(maxsize=64)
def plan_for(schema_text: bytes | str) -> Plan:
    """Parse a writer schema and build its projection; cached because every message repeats it.

    The key is the schema JSON as it arrives (bytes from a container header, the str that a
    SchemaSource caches, whose hash Python keeps), so two producers that write the same schema
    with different spacing get two entries, which is harmless; the bound keeps a stream of
    garbage schemas from growing memory.
    """
    schema = json.loads(schema_text)
    writer = fastavro.parse_schema(schema)
    name = ""
    version = None
    if isinstance(schema, dict) and schema.get("type") in ("record", "error"):
        name = fullname(schema, None)
        match = VERSION_IN_NAME.search(name) or _VERSION_IN_DOC.search(str(schema.get("doc", "")))
        version = f"{int(match[1])}.{int(match[2])}" if match else None
    located = locate(schema)
    if located.survey is None or located.missing:  # refused before any record is read
        return Plan(writer=writer, reader=writer, version=version, name=name, located=located)
    projected = project_schema(schema, located.keep)
    reader = fastavro.parse_schema(projected)
    fast = None
    try:
        fast = cavro.Schema(projected, options=_CAVRO_OPTIONS).reader_for_writer(
            cavro.Schema(schema, options=_CAVRO_OPTIONS)
        )
    except Exception as exc:  # a schema cavro's stricter rules refuse: fastavro reads it
        log.info("schema %s: fastavro only (%s: %s)", name, type(exc).__name__, exc)
    return Plan(
        writer=writer, reader=reader, version=version, name=name, located=located, fast=fast
    )


# Real writer schemas are not always valid Avro: Fink's declare union defaults that are not the
# first branch (``"default": null`` for ``["float", "null"]``). Those defaults are never used
# when reading, so cavro may accept them; everything else keeps cavro's strict defaults.
_CAVRO_OPTIONS = dataclasses.replace(
    cavro.DEFAULT_OPTIONS,
    record_decodes_to_dict=True,
    allow_union_default_any_member=True,
    allow_invalid_default_values=True,
)
# Reading one byte past a record tells whether the buffer had more: EOFError means it did not.
_PROBE = cavro.Schema({"type": "fixed", "name": "probe", "size": 1})


class RecordReader:
    """Reads records one after another from one buffer and says whether bytes are left."""

    def read(self) -> Any:
        raise NotImplementedError

    def trailing(self) -> bool:
        raise NotImplementedError


class _CavroRecords(RecordReader):
    """cavro decodes the projected alert about 2x faster than fastavro (measured on the ZTF
    and Fink samples: ~3,900 vs ~1,950 records/s) because its skipping of the unused history
    is compiled per schema rather than interpreted per field."""

    def __init__(self, resolved: Any, data: bytes | memoryview, start: int) -> None:
        self.resolved = resolved
        self.reader = cavro.MemoryReader(memoryview(data)[start:])

    def read(self) -> Any:
        return self.resolved.binary_read(self.reader)

    def trailing(self) -> bool:
        try:
            _PROBE.binary_read(self.reader)
        except EOFError:
            return False
        return True


class _FastavroRecords(RecordReader):
    def __init__(self, plan: Plan, data: bytes | memoryview, start: int) -> None:
        self.plan = plan
        self.stream = io.BytesIO(data)
        self.stream.seek(start)
        self.size = len(data)

    def read(self) -> Any:
        return fastavro.schemaless_reader(self.stream, self.plan.writer, self.plan.reader)

    def trailing(self) -> bool:
        return self.stream.tell() != self.size
