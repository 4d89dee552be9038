"""``ahunt decode FILE...``: decode alert packets the way the scorer does, and say what failed.

Each FILE is one Kafka message as it would arrive: an Avro container (ZTF, Fink, Rubin files)
or a Confluent-framed Rubin packet. One line per record: a table by default, JSON lines with
``--json`` (keys: file, index, alert_id, object_id, survey, schema_version, cutout_shapes, ok,
error), then ``N decoded, M rejected``. Exit status: 0 if every record decoded, 1 if any was
rejected (or a file could not be read), 2 if the schema registry could not be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from services.common.alerts import (
    Alert,
    Rejected,
    SchemaRegistryError,
    SchemaSource,
    decode_message,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``decode``'s arguments on ``parser`` (``services.cli`` owns the sub-command)."""
    parser.add_argument("files", nargs="+", metavar="FILE", type=Path, help="alert packet files")
    parser.add_argument("--json", action="store_true", help="print one JSON object per record")
    parser.add_argument(
        "--schemas",
        metavar="DIR",
        type=Path,
        help="directory of Confluent schemas: <id>.avsc / <id>.json / schemas.json, or an "
        "lsst/alert_packet schema tree",
    )
    parser.add_argument(
        "--registry", metavar="URL", help="Confluent Schema Registry URL for schema ids"
    )


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Decode every file, print the rows and the summary, return the exit status."""
    stream = out if out is not None else sys.stdout
    schemas = None
    if args.schemas is not None or args.registry:
        try:
            schemas = SchemaSource(args.schemas, args.registry)
        except (OSError, ValueError) as exc:
            print(f"ahunt decode: cannot load schemas: {exc}", file=sys.stderr)
            return 2
    rows: list[dict[str, Any]] = []
    for path in args.files:
        try:
            payload = path.read_bytes()
        except OSError as exc:
            rows.append(_error_row(path, None, None, f"unreadable: {exc.strerror or exc}"))
            continue
        try:
            results = decode_message(payload, schemas)
        except SchemaRegistryError as exc:
            print(f"ahunt decode: {path}: {exc}", file=sys.stderr)
            return 2
        # a whole-message rejection has index None: it is not any one record
        rows.extend(
            _row(path, result.index if isinstance(result, Rejected) else i, result)
            for i, result in enumerate(results)
        )
    if args.json:
        for row in rows:
            print(json.dumps(row), file=stream)
    else:
        _print_table(rows, stream)
    rejected = sum(not row["ok"] for row in rows)
    print(f"{len(rows) - rejected} decoded, {rejected} rejected", file=stream)
    return 1 if rejected else 0


def _row(path: Path, index: int | None, result: Alert | Rejected) -> dict[str, Any]:
    if isinstance(result, Alert):
        return {
            "file": str(path),
            "index": index,
            "alert_id": result.alert_id,
            "object_id": result.object_id,
            "survey": result.survey,
            "schema_version": result.schema_version,
            "cutout_shapes": [list(image.shape) for image in result.cutouts],
            "ok": True,
            "error": None,
        }
    return _error_row(path, index, result.alert_id, f"{result.reason}: {result.message}")


def _error_row(path: Path, index: int | None, alert_id: str | None, error: str) -> dict[str, Any]:
    return {
        "file": str(path),
        "index": index,
        "alert_id": alert_id,
        "object_id": None,
        "survey": None,
        "schema_version": None,
        "cutout_shapes": None,
        "ok": False,
        "error": error,
    }


_COLUMNS = (
    ("FILE", "file"),
    ("#", "index"),
    ("SURVEY", "survey"),
    ("VERSION", "schema_version"),
    ("ALERT_ID", "alert_id"),
    ("OBJECT_ID", "object_id"),
    ("CUTOUTS", "cutout_shapes"),
    ("STATUS", "error"),
)


def _cell(key: str, row: dict[str, Any]) -> str:
    value = row[key]
    if key == "file":
        return Path(value).name
    if key == "cutout_shapes":
        return " ".join(f"{h}x{w}" for h, w in value) if value else "-"
    if key == "error":
        return "ok" if row["ok"] else str(value)
    return "-" if value is None else str(value)


def _print_table(rows: list[dict[str, Any]], stream: TextIO) -> None:
    table = [[title for title, _ in _COLUMNS]]
    table += [[_cell(key, row) for _, key in _COLUMNS] for row in rows]
    # the last column (status/error text) is left ragged so long messages do not pad every line
    widths = [max(len(line[i]) for line in table) for i in range(len(_COLUMNS) - 1)]
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        print("  ".join([*cells, line[-1]]).rstrip(), file=stream)
