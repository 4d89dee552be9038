"""Avro schema plumbing for the decoder: named types and the projected reader schema.

A reader schema that keeps only the fields an alert needs lets the Avro reader skip everything
else (30 days of history, broker columns) without building Python objects for it. Avro schema
resolution pairs reader and writer records by full name, so the projection keeps every name as
the writer spelled it, whatever it is (``ztf.alert.candidate``, Spark's
``topLevelRecord.candidate``, ``lsst.v10_0.diaSource``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["PRIMITIVES", "NamedTypes", "fullname", "named_types", "project_schema"]

PRIMITIVES: Final = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)

#: full name -> (definition, the namespace it was defined in)
NamedTypes = dict[str, tuple[dict[str, Any], str | None]]


def named_types(schema: Any) -> NamedTypes:
    """Every named type (record, enum, fixed) a schema defines, by full name."""
    named: NamedTypes = {}
    _collect_named(schema, None, named)
    return named


def project_schema(schema: Any, keep: Mapping[str, Any]) -> Any:
    """A reader schema with only the fields named in ``keep`` (nested dicts for records).

    Records keep their full names, so Avro schema resolution pairs them with the writer's; a
    named type first defined inside a dropped field is inlined where a kept field first uses
    it. ``keep[name] = None`` keeps that field whole.

    >>> writer = {"type": "record", "name": "a", "namespace": "x", "fields": [
    ...     {"name": "big", "type": {"type": "record", "name": "b", "fields": [
    ...         {"name": "u", "type": "int"}, {"name": "v", "type": "int"}]}},
    ...     {"name": "again", "type": ["null", "b"]},
    ...     {"name": "drop", "type": "string"}]}
    >>> project_schema(writer, {"again": {"v": None}})  # doctest: +NORMALIZE_WHITESPACE
    {'type': 'record', 'name': 'x.a', 'fields': [{'name': 'again', 'type':
      ['null', {'type': 'record', 'name': 'x.b', 'fields': [{'name': 'v', 'type': 'int'}]}]}]}
    """
    named = named_types(schema)
    emitted: set[str] = set()

    def prune(node: Any, spec: Mapping[str, Any] | None, namespace: str | None) -> Any:
        if isinstance(node, str):
            if node in PRIMITIVES:
                return node
            full = node if "." in node or not namespace else f"{namespace}.{node}"
            if full not in named and node in named:
                full = node
            if full in emitted or full not in named:
                return full  # already defined above, or unknown: let parse_schema complain
            definition, outer = named[full]
            return prune(definition, spec, outer)
        if isinstance(node, list):
            return [prune(branch, spec, namespace) for branch in node]
        if not isinstance(node, dict):
            return node
        kind = node.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            full = fullname(node, namespace)
            if full in emitted:
                return full
            emitted.add(full)
            if kind in ("enum", "fixed"):
                return {k: v for k, v in node.items() if k not in ("namespace", "aliases")} | {
                    "name": full
                }
            inner = full.rpartition(".")[0] or None
            fields = []
            for field in node["fields"]:
                if spec is not None and field["name"] not in spec:
                    continue
                sub = None if spec is None else spec[field["name"]]
                fields.append({"name": field["name"], "type": prune(field["type"], sub, inner)})
            return {"type": "record", "name": full, "fields": fields}
        if kind == "array":
            return {**node, "items": prune(node["items"], spec, namespace)}
        if kind == "map":
            return {**node, "values": prune(node["values"], spec, namespace)}
        if isinstance(kind, dict | list) or (isinstance(kind, str) and kind not in PRIMITIVES):
            return prune(kind, spec, namespace)  # {"type": {...}} or {"type": "named.Type"}
        return node

    return prune(schema, keep, None)


def fullname(node: Mapping[str, Any], namespace: str | None) -> str:
    name = str(node["name"])
    if "." in name:
        return name
    namespace = node.get("namespace", namespace)
    return f"{namespace}.{name}" if namespace else name


def _collect_named(node: Any, namespace: str | None, named: NamedTypes) -> None:
    if isinstance(node, list):
        for branch in node:
            _collect_named(branch, namespace, named)
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind in ("record", "error", "enum", "fixed") and "name" in node:
            full = fullname(node, namespace)
            named.setdefault(full, (node, namespace))
            if kind in ("record", "error"):
                for field in node.get("fields", ()):
                    _collect_named(field.get("type"), full.rpartition(".")[0] or None, named)
        elif kind == "array":
            _collect_named(node.get("items"), namespace, named)
        elif kind == "map":
            _collect_named(node.get("values"), namespace, named)
        elif isinstance(kind, dict | list):
            _collect_named(kind, namespace, named)


def branches(node: Any, namespace: str | None, named: NamedTypes) -> list[tuple[Any, str | None]]:
    """The concrete non-null types a field may hold, each with the namespace its fields live in.

    Named references are looked up, unions flattened and ``{"type": "long", ...}`` annotations
    reduced to their primitive, so ``["null", "ns.rec"]``, ``[{"type": "record", ...}, "null"]``
    and ``"rec"`` all give the record definition.

    >>> rec = {"type": "record", "name": "r", "namespace": "ns", "fields": []}
    >>> named = named_types(rec)
    >>> branches(["null", "ns.r", {"type": "long", "logicalType": "x"}], None, named)
    [({'type': 'record', 'name': 'r', 'namespace': 'ns', 'fields': []}, 'ns'), ('long', None)]
    """
    if isinstance(node, list):
        return [b for branch in node for b in branches(branch, namespace, named)]
    if isinstance(node, str):
        if node == "null":
            return []
        if node in PRIMITIVES:
            return [(node, namespace)]
        full = node if "." in node or not namespace else f"{namespace}.{node}"
        if full not in named and node in named:
            full = node
        if full not in named:
            return [(node, namespace)]  # an unknown name: no field of it will match anything
        definition, outer = named[full]
        return branches(definition, outer, named)
    if isinstance(node, dict):
        kind = node.get("type")
        if kind in ("record", "error", "enum", "fixed") and "name" in node:
            return [(node, fullname(node, namespace).rpartition(".")[0] or None)]
        if kind in ("array", "map"):
            return [(node, namespace)]
        return branches(kind, namespace, named)
    return [(node, namespace)]
