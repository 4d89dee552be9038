"""Confluent schema ids -> Avro writer schemas: a local directory first, then a Schema Registry.

Rubin publishes in Confluent wire format (0x00, a 4-byte schema id, schemaless Avro), so the
writer schema of every message comes from here. A registry that cannot be reached raises
:class:`SchemaRegistryError` (infrastructure: the consumer stops and replays); everything else
about a schema is data and ends up as a rejection reason.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro

__all__ = ["BadSchemaError", "SchemaRegistryError", "SchemaSource"]


class SchemaRegistryError(RuntimeError):
    """The registry could not be asked (network, timeout, 5xx): infrastructure, not data."""


class BadSchemaError(ValueError):
    """A schema was found for an id but cannot be used (unreadable file, not Avro JSON)."""


class SchemaSource:
    """Resolves Confluent schema ids to Avro schema JSON: a local directory first, then a registry.

    Directory layout (``directory``, searched once at construction):

    - ``<id>.avsc`` or ``<id>.json``: the schema itself, or a saved registry answer
      ``{"schema": "<schema as a JSON string>"}`` (what ``GET /schemas/ids/<id>`` returns).
    - ``schemas.json``: ``{"<id>": <schema object | schema string | registry answer>, ...}``.
    - ``**/lsst.v<M>_<N>.alert.avsc``: the layout of Rubin's ``lsst/alert_packet`` schema tree,
      id ``M*100+N``; named types are resolved from the sibling ``*.avsc`` files.

    Explicit ``<id>`` files win over ``schemas.json``, which wins over the lsst layout.

    Registry (``registry_url``): ``GET {url}/schemas/ids/{id}`` with ``timeout_s``. Answers are
    cached for good (Confluent ids are immutable); a 404 is remembered as unknown for
    ``negative_ttl_s`` so a flood of one bad id does not flood the registry, while a schema
    registered later is still found. Any other failure raises :class:`SchemaRegistryError`.
    """

    def __init__(
        self,
        directory: str | Path | None = None,
        registry_url: str | None = None,
        *,
        timeout_s: float = 5.0,
        negative_ttl_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.registry_url = registry_url.rstrip("/") if registry_url else None
        self.timeout_s = timeout_s
        self.negative_ttl_s = negative_ttl_s
        self._clock = clock
        self._local: dict[int, Callable[[], str]] = {}
        self._cache: dict[int, str] = {}
        self._unknown_until: dict[int, float] = {}
        if self.directory is not None:
            self._scan(self.directory)

    def __repr__(self) -> str:
        return (
            f"SchemaSource(directory={self.directory}, registry_url={self.registry_url!r}, "
            f"local_ids={sorted(self._local)})"
        )

    @property
    def local_ids(self) -> frozenset[int]:
        """Ids the directory provides (for logs and ``--help``-style listings)."""
        return frozenset(self._local)

    def schema_text(self, schema_id: int) -> str | None:
        """The writer schema JSON for ``schema_id``, or None if nobody knows that id.

        Raises :class:`BadSchemaError` for an unreadable local file or registry answer, and
        :class:`SchemaRegistryError` when the registry cannot be reached.
        """
        cached = self._cache.get(schema_id)
        if cached is not None:
            return cached
        loader = self._local.get(schema_id)
        text = loader() if loader is not None else self._from_registry(schema_id)
        if text is not None:
            self._cache[schema_id] = text
        return text

    # directory

    def _scan(self, directory: Path) -> None:
        if not directory.is_dir():
            raise FileNotFoundError(f"schema directory {directory} does not exist")
        for path in sorted(directory.rglob("lsst.v*_*.alert.avsc")):
            match = re.fullmatch(r"lsst\.v(\d+)_(\d+)\.alert\.avsc", path.name)
            if match:
                schema_id = int(match[1]) * 100 + int(match[2])
                self._local[schema_id] = functools.partial(_load_split_schema, path)
        mapping = directory / "schemas.json"
        if mapping.is_file():
            for key, entry in _read_json(mapping).items():
                if not str(key).isdigit():
                    raise BadSchemaError(f"{mapping}: key {key!r} is not a schema id")
                self._local[int(key)] = functools.partial(_schema_json, entry, f"{mapping}[{key}]")
        for path in sorted(directory.iterdir()):
            if path.suffix in (".avsc", ".json") and path.stem.isdigit() and path.is_file():
                self._local[int(path.stem)] = functools.partial(_load_schema_file, path)

    # registry

    def _from_registry(self, schema_id: int) -> str | None:
        if self.registry_url is None:
            return None
        if self._unknown_until.get(schema_id, -math.inf) > self._clock():
            return None
        url = f"{self.registry_url}/schemas/ids/{schema_id}"
        request = urllib.request.Request(
            url, headers={"Accept": "application/vnd.schemaregistry.v1+json, application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:  # Confluent: error_code 40403 "Schema not found"
                self._unknown_until[schema_id] = self._clock() + self.negative_ttl_s
                return None
            raise SchemaRegistryError(f"GET {url}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError) as exc:  # refused, DNS, timeout
            raise SchemaRegistryError(f"GET {url}: {exc}") from exc
        try:
            answer = json.loads(body)
        except ValueError as exc:
            raise BadSchemaError(f"GET {url}: answer is not JSON: {exc}") from None
        return _schema_json(answer, f"GET {url}")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadSchemaError(f"{path}: {exc}") from None


def _load_schema_file(path: Path) -> str:
    return _schema_json(_read_json(path), str(path))


def _schema_json(entry: Any, where: str) -> str:
    """Normalise a schema object, schema string or registry answer to schema JSON text."""
    if isinstance(entry, dict) and isinstance(entry.get("schema"), str):
        schema_type = entry.get("schemaType", "AVRO")
        if schema_type != "AVRO":
            raise BadSchemaError(f"{where}: schemaType {schema_type!r}, not AVRO")
        entry = entry["schema"]
    if isinstance(entry, str):
        try:
            json.loads(entry)
        except ValueError as exc:
            raise BadSchemaError(f"{where}: schema string is not JSON: {exc}") from None
        return entry
    if isinstance(entry, dict | list):
        return json.dumps(entry)
    raise BadSchemaError(f"{where}: expected a schema, got {type(entry).__name__}")


def _load_split_schema(path: Path) -> str:
    """An lsst/alert_packet ``alert.avsc`` whose named types live in sibling files."""
    try:
        parsed = fastavro.schema.load_schema(str(path))
        return fastavro.schema.to_parsing_canonical_form(parsed)
    except Exception as exc:  # fastavro raises several types for unknown or bad named types
        raise BadSchemaError(f"{path}: {type(exc).__name__}: {exc}") from None
