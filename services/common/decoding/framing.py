"""Message bytes -> (plan, records): Avro object containers and Confluent framing.

- ``Obj\\x01``: an Avro object container (ZTF, Fink re-published ZTF and Rubin, Rubin files);
  codecs null, deflate and snappy (snappy needs ``cramjam``); every record of every block.
- ``\\x00`` + 4-byte big-endian schema id + schemaless Avro: Confluent wire format (Rubin); the
  writer schema comes from a :class:`~.schema_source.SchemaSource`.

Why a hand-written container reader instead of ``fastavro.reader``: fastavro re-parses the writer
schema embedded in every message, and decodes all of the 30-day history we never use; here the
schema's plan is cached and its projection skips the history. Anything structurally wrong (cut
short, bad sync marker, bad block CRC, records that overrun their block, trailing bytes) raises
:class:`~.results.BrokenMessage`: the whole message is refused.
"""

from __future__ import annotations

import zlib
from typing import Any, Final

from services.common.decoding import plans
from services.common.decoding.limits import RAW_DEFLATE, InflateError, InflationBudget
from services.common.decoding.plans import Plan
from services.common.decoding.results import BrokenMessage
from services.common.decoding.schema_source import BadSchemaError, SchemaSource

__all__ = ["CONTAINER_MAGIC", "Cursor", "confluent_record", "container_records"]

CONTAINER_MAGIC: Final = b"Obj\x01"
_SYNC_SIZE: Final = 16
# A deflate block may not inflate past this (a Fink part file holds ~2.5 MB per block); the
# message's InflationBudget is the tighter bound for all but huge files.
_MAX_BLOCK_BYTES: Final = 256 * 1024 * 1024
_SNAPPY_MAX_RATIO: Final = 32  # snappy cannot expand more than ~21x; more is a corrupt preamble


class Cursor:
    """Reads Avro varints and raw spans of a payload, raising ``BrokenMessage`` at its end."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def varint(self, what: str) -> int:
        """An unsigned LEB128 varint (snappy's length preamble; Avro longs before zigzag)."""
        data, pos, shift, value = self.data, self.pos, 0, 0
        while True:
            if pos >= len(data):
                raise BrokenMessage("truncated", f"payload ends inside {what} (byte {pos})")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 63:
                raise BrokenMessage(
                    "corrupt_avro", f"varint of {what} longer than 10 bytes at {pos}"
                )
        self.pos = pos
        return value

    def long(self, what: str) -> int:
        """An Avro long: a zigzag-encoded varint."""
        value = self.varint(what)
        return (value >> 1) ^ -(value & 1)

    def take(self, size: int, what: str) -> bytes:
        end = self.pos + size
        if size < 0:
            raise BrokenMessage("corrupt_avro", f"negative length {size} for {what}")
        if end > len(self.data):
            raise BrokenMessage(
                "truncated",
                f"{what} needs {size} bytes at byte {self.pos}, payload has {len(self.data)}",
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk


def container_records(payload: bytes, budget: InflationBudget) -> tuple[Plan, list[dict[str, Any]]]:
    """Decode every record of an object container with the cached projection of its schema."""
    cursor = Cursor(payload, len(CONTAINER_MAGIC))
    meta: dict[str, bytes] = {}
    while True:  # the header's metadata map, in Avro map blocks
        count = cursor.long("the header metadata count")
        if count == 0:
            break
        if count < 0:
            count = -count
            cursor.long("the header metadata block size")
        if count > len(payload):
            raise BrokenMessage("corrupt_avro", f"header claims {count} metadata entries")
        for _ in range(count):
            key = cursor.take(cursor.long("a metadata key length"), "a metadata key")
            meta[key.decode("utf-8", "replace")] = cursor.take(
                cursor.long("a metadata value length"), "a metadata value"
            )
    sync = cursor.take(_SYNC_SIZE, "the header sync marker")
    schema_text = meta.get("avro.schema")
    if schema_text is None:
        raise BrokenMessage("corrupt_avro", "container header has no avro.schema")
    codec = meta.get("avro.codec", b"null").decode("ascii", "replace")
    if codec not in ("null", "deflate", "snappy"):
        raise BrokenMessage("unsupported_codec", f"codec {codec!r}")
    try:
        plan = plans.plan_for(bytes(schema_text))
    except Exception as exc:  # JSON or Avro schema errors: the header is damaged
        raise BrokenMessage(
            "corrupt_avro", f"container schema: {type(exc).__name__}: {exc}"
        ) from None
    plan.refuse_unusable("the container's writer schema")
    records: list[dict[str, Any]] = []
    block_index = 0
    while cursor.pos < len(payload):
        count = cursor.long(f"block {block_index}'s record count")
        size = cursor.long(f"block {block_index}'s byte size")
        if count < 0 or size < 0:
            raise BrokenMessage("corrupt_avro", f"block {block_index}: count {count}, size {size}")
        data = cursor.take(size, f"block {block_index}")
        if cursor.take(_SYNC_SIZE, f"block {block_index}'s sync marker") != sync:
            raise BrokenMessage("corrupt_avro", f"block {block_index}: sync marker mismatch")
        block = _inflate(codec, data, block_index, budget)
        if count > len(block):  # every alert record takes bytes; this bounds the loop
            raise BrokenMessage(
                "corrupt_avro", f"block {block_index}: {count} records in {len(block)} bytes"
            )
        records_in_block = plan.records(block)
        for _ in range(count):
            try:
                record = records_in_block.read()
            except Exception as exc:  # EOFError, UnicodeDecodeError, IndexError, ...
                raise BrokenMessage(
                    "corrupt_avro",
                    f"block {block_index}, record {len(records)}: {type(exc).__name__}: {exc}",
                ) from None
            records.append(_as_record(record))
        if records_in_block.trailing():
            raise BrokenMessage(
                "corrupt_avro", f"block {block_index}: bytes left after {count} records"
            )
        block_index += 1
    if not records:
        raise BrokenMessage("no_records", f"container with {block_index} block(s) and no record")
    return plan, records


def _inflate(codec: str, data: bytes, block_index: int, budget: InflationBudget) -> bytes:
    if codec == "null":
        return data
    if codec == "deflate":
        try:
            return budget.inflate(data, wbits=RAW_DEFLATE, limit=_MAX_BLOCK_BYTES)
        except InflateError as exc:
            detail = {"truncated": "stream ends early", "too_large": exc.message}
            what = detail.get(exc.kind, f"data: {exc.message}")
            raise BrokenMessage("corrupt_avro", f"block {block_index}: deflate {what}") from None
    # snappy: raw snappy + 4-byte big-endian CRC32 of the uncompressed block
    try:
        import cramjam
    except ImportError:
        raise BrokenMessage("unsupported_codec", "snappy needs the cramjam package") from None
    if len(data) < 4:
        raise BrokenMessage(
            "corrupt_avro", f"block {block_index}: snappy block shorter than its CRC"
        )
    body, crc = data[:-4], int.from_bytes(data[-4:], "big")
    declared = Cursor(body).varint("the snappy length preamble")
    if declared > _SNAPPY_MAX_RATIO * len(body) + 64:  # refuse before cramjam allocates it
        raise BrokenMessage(
            "corrupt_avro", f"block {block_index}: snappy length preamble too large"
        )
    budget.charge(declared)  # refuse before cramjam allocates it, too
    try:
        block = bytes(cramjam.snappy.decompress_raw(body))
    except Exception as exc:  # cramjam.DecompressionError and friends
        raise BrokenMessage("corrupt_avro", f"block {block_index}: snappy: {exc}") from None
    if zlib.crc32(block) != crc:
        raise BrokenMessage("corrupt_avro", f"block {block_index}: snappy CRC32 mismatch")
    return block


def confluent_record(
    payload: bytes, schemas: SchemaSource | None
) -> tuple[Plan, dict[str, Any], int]:
    if len(payload) < 5:
        raise BrokenMessage(
            "truncated", f"Confluent framing needs 5 header bytes, got {len(payload)}"
        )
    schema_id = int.from_bytes(payload[1:5], "big")
    if schemas is None:
        raise BrokenMessage(
            "unknown_schema_id", f"schema id {schema_id}: no schema source configured"
        )
    try:
        text = schemas.schema_text(schema_id)
    except BadSchemaError as exc:
        raise BrokenMessage("bad_schema", f"schema id {schema_id}: {exc}") from None
    if text is None:
        raise BrokenMessage("unknown_schema_id", f"schema id {schema_id} not found in {schemas!r}")
    try:
        plan = plans.plan_for(text)
    except Exception as exc:
        raise BrokenMessage(
            "bad_schema", f"schema id {schema_id}: {type(exc).__name__}: {exc}"
        ) from None
    plan.refuse_unusable(f"schema id {schema_id}")
    reader = plan.records(payload, 5)
    try:
        record = reader.read()
    except EOFError as exc:
        raise BrokenMessage(
            "truncated", f"schema id {schema_id}: record cut short: {exc}"
        ) from None
    except Exception as exc:
        raise BrokenMessage(
            "corrupt_avro", f"schema id {schema_id}: {type(exc).__name__}: {exc}"
        ) from None
    record = _as_record(record)
    if reader.trailing():
        raise BrokenMessage(
            "corrupt_avro",
            f"schema id {schema_id}: bytes left after the record (wrong schema for this id?)",
        )
    return plan, record, schema_id


def _as_record(value: object) -> dict[str, Any]:
    # a ZTF/Rubin plan only exists for record schemas, so this cannot fail on real input
    if not isinstance(value, dict):
        raise BrokenMessage("corrupt_avro", f"decoded a {type(value).__name__}, not a record")
    return value
