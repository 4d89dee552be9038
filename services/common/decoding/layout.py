"""Where a writer schema keeps the fields of an alert, found by structure, not by schema name.

Alerts reach users from the surveys and from archives that rewrite them: Spark renames every
record (``topLevelRecord``, ``topLevelRecord.candidate``), archives drop the ids that ZTF repeats
at the top level (``candid`` lives on in ``candidate``), reorder fields, make everything nullable
(unions in either order), add columns, drop the history, store cutouts as plain bytes, and widen
or narrow numbers. None of this changes what an alert *means*, so a schema is read by what it
holds: a :class:`SurveyLayout` lists, for each role an alert needs (ids, position, time,
magnitude, the three cutouts), the field names that carry it and the records it may sit in, and
:func:`locate` finds them in any writer schema. Names match exactly, or else ignoring case
(Hive-style metastores lower-case column names). Record and namespace names are never looked at.

Which survey: the layout with evidence in the schema (its measurement record, ``candidate`` or
``diaSource``, or one of its distinctive fields such as ``candid`` or ``midpointMjdTai``) and the
fewest missing required roles. A schema with evidence for neither is no alert
(``unknown_survey``); a schema that is recognisably an alert but lacks a required role (or holds
it in a type that cannot carry it, such as a double id) is refused with the roles it lacks
(``missing_field``), before a single record is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from services.common.decoding.projection import NamedTypes, branches, fullname, named_types

__all__ = ["LAYOUTS", "Located", "SurveyLayout", "Wanted", "locate"]

Kind = Literal["id", "number", "text", "stamp"]

#: Avro types each kind of role accepts. Ids must be exact: a float id loses digits.
_ACCEPTS: Final[dict[str, frozenset[str]]] = {
    "id": frozenset({"int", "long", "string"}),
    "number": frozenset({"int", "long", "float", "double"}),
    "text": frozenset({"string"}),
    "stamp": frozenset({"bytes"}),  # or a record with a bytes ``stampData`` (ZTF's cutout)
}
_KIND_WORDS: Final = {
    "id": "an integer or string id",
    "number": "a number",
    "text": "a string",
    "stamp": "bytes or a record with stampData bytes",
}
_STAMP_DATA: Final = "stampData"
TOP: Final = ""  # the place name of the top-level record


@dataclass(frozen=True)
class Wanted:
    """One role of an alert: the names that carry it, and where to look, in order."""

    role: str  # key in Located.paths: alert_id, object_id, ra, dec, time, magnitude, ...
    label: str  # how messages name it: the survey's own path, e.g. "candidate.jd"
    names: tuple[str, ...]  # field names that carry it, preferred first (renames across versions)
    places: tuple[str, ...]  # records to look in, in order; TOP is the alert record itself
    kind: Kind
    required: bool = True
    distinctive: bool = False  # finding it says "this is that survey's alert"


@dataclass(frozen=True)
class SurveyLayout:
    survey: Literal["ztf", "rubin"]
    wanted: tuple[Wanted, ...]
    #: records whose presence alone says "this survey" (ZTF's candidate, Rubin's diaSource)
    signature: tuple[str, ...]


def _cutouts(kind: Kind = "stamp") -> tuple[Wanted, ...]:
    return tuple(
        Wanted(name, name, (name,), (TOP,), kind)
        for name in ("cutoutScience", "cutoutTemplate", "cutoutDifference")
    )


ZTF: Final = SurveyLayout(
    "ztf",
    (
        # the top-level copies first: ZTF names them the alert's ids; archives may keep only
        # candidate.candid, and objectId is looked for in candidate too for flattened rewrites
        Wanted("alert_id", "candid", ("candid",), (TOP, "candidate"), "id", distinctive=True),
        Wanted("object_id", "objectId", ("objectId",), (TOP, "candidate"), "id", distinctive=True),
        Wanted("ra", "candidate.ra", ("ra",), ("candidate", TOP), "number"),
        Wanted("dec", "candidate.dec", ("dec",), ("candidate", TOP), "number"),
        Wanted("time", "candidate.jd", ("jd",), ("candidate", TOP), "number", distinctive=True),
        Wanted(
            "magnitude",
            "candidate.magpsf",
            ("magpsf",),
            ("candidate", TOP),
            "number",
            distinctive=True,
        ),
        Wanted("version", "schemavsn", ("schemavsn",), (TOP,), "text", required=False),
        *_cutouts(),
    ),
    signature=("candidate",),
)

RUBIN: Final = SurveyLayout(
    "rubin",
    (
        # alertId until v7, diaSourceId since v8 (top level), and always inside diaSource
        Wanted(
            "alert_id",
            "diaSourceId",
            ("diaSourceId", "alertId"),
            (TOP, "diaSource"),
            "id",
            distinctive=True,
        ),
        # optional: an alert not yet associated with any object is still worth scoring
        Wanted(
            "object_id",
            "diaObject.diaObjectId",
            ("diaObjectId", "ssObjectId"),
            ("diaObject", "diaSource", TOP),
            "id",
            required=False,
        ),
        Wanted("ra", "diaSource.ra", ("ra",), ("diaSource", TOP), "number"),
        # v3/v4 spell these decl, midPointTai and psFlux
        Wanted("dec", "diaSource.dec", ("dec", "decl"), ("diaSource", TOP), "number"),
        Wanted(
            "time",
            "diaSource.midpointMjdTai",
            ("midpointMjdTai", "midPointTai"),
            ("diaSource", TOP),
            "number",
            distinctive=True,
        ),
        # optional: a negative difference flux is real and has no magnitude
        Wanted(
            "magnitude",
            "diaSource.psfFlux",
            ("psfFlux", "psFlux"),
            ("diaSource", TOP),
            "number",
            required=False,
        ),
        Wanted("version", "lsst_schema_version", ("lsst_schema_version",), (TOP,), "text", False),
        *_cutouts(),
    ),
    signature=("diaSource",),
)

LAYOUTS: Final = (ZTF, RUBIN)


@dataclass(frozen=True)
class Located:
    """What :func:`locate` found in one writer schema.

    ``paths[role]``: the field paths that carry the role, preferred first (a record whose first
    path is null falls back to the next); ``stamp_keys[role]``: the name of the bytes field in a
    cutout record; ``keep``: the projection spec for :func:`~.projection.project_schema`;
    ``missing``: why a required role cannot be read (empty when the schema is usable).
    """

    survey: Literal["ztf", "rubin"] | None
    paths: Mapping[str, tuple[tuple[str, ...], ...]]
    stamp_keys: Mapping[str, str]
    keep: Mapping[str, Any]
    missing: tuple[str, ...]

    def label(self, role: str, path: tuple[str, ...] | None = None) -> str:
        """The path as the writer spells it (``candidate.jd``), or the survey's label."""
        if path is not None:
            return ".".join(path)
        layout = next(layout for layout in LAYOUTS if layout.survey == self.survey)
        return next(w.label for w in layout.wanted if w.role == role)


NOT_AN_ALERT: Final = Located(None, {}, {}, {}, ())


def locate(schema: Any) -> Located:
    """Find every role of the best-matching survey layout in a parsed writer schema (JSON).

    >>> ztf = {"type": "record", "name": "topLevelRecord", "fields": [
    ...     {"name": "candidate", "type": ["null", {"type": "record", "name": "c", "fields": [
    ...         {"name": "candid", "type": "long"}, {"name": "JD", "type": "float"},
    ...         {"name": "ra", "type": ["double", "null"]}]}]},
    ...     {"name": "cutoutScience", "type": ["null", "bytes"]}]}
    >>> found = locate(ztf)
    >>> found.survey, found.paths["alert_id"], found.paths["time"]
    ('ztf', (('candidate', 'candid'),), (('candidate', 'JD'),))
    >>> found.missing  # doctest: +NORMALIZE_WHITESPACE
    ('objectId', 'candidate.dec', 'candidate.magpsf', 'cutoutTemplate', 'cutoutDifference')
    >>> locate({"type": "record", "name": "x", "fields": [{"name": "a", "type": "int"}]}).survey
    """
    if not isinstance(schema, dict) or schema.get("type") not in ("record", "error"):
        return NOT_AN_ALERT
    named = named_types(schema)
    found = [
        result
        for layout in LAYOUTS
        if (result := _locate(schema, named, layout))[1]  # only layouts with evidence
    ]
    if not found:
        return NOT_AN_ALERT
    return min(found, key=lambda item: len(item[0].missing))[0]  # ties: LAYOUTS order


def _locate(
    schema: dict[str, Any], named: NamedTypes, layout: SurveyLayout
) -> tuple[Located, bool]:
    top_namespace = fullname(schema, None).rpartition(".")[0] or None
    records: dict[str, tuple[str, dict[str, Any], str | None] | None] = {
        TOP: ("", schema, top_namespace)
    }
    evidence = False
    for place in {p for w in layout.wanted for p in w.places} - {TOP}:
        records[place] = _record_field(schema, place, top_namespace, named)
        evidence |= place in layout.signature and records[place] is not None
    paths: dict[str, tuple[tuple[str, ...], ...]] = {}
    stamp_keys: dict[str, str] = {}
    keep: dict[str, Any] = {}
    missing: list[str] = []
    for wanted in layout.wanted:
        usable: list[tuple[str, ...]] = []
        unusable: list[str] = []
        for place in wanted.places:
            holder = records[place]
            if holder is None:
                continue
            prefix, record, namespace = holder
            for name in wanted.names:
                field = _field(record, name)
                if field is None:
                    continue
                path = (prefix, field["name"]) if prefix else (field["name"],)
                fits, detail = _check(
                    branches(field.get("type"), namespace, named), wanted.kind, named
                )
                if not fits:
                    what = _KIND_WORDS[wanted.kind]
                    unusable.append(f"{'.'.join(path)} is {detail}, not {what}")
                    continue
                usable.append(path)
                if detail is not None:  # a cutout record: read only its bytes field
                    stamp_keys[wanted.role] = detail
                _keep(keep, path, None if detail is None else {detail: None})
        if usable:
            paths[wanted.role] = tuple(usable)
            evidence |= wanted.distinctive
        elif wanted.required:
            missing.append(unusable[0] if unusable else wanted.label)
    return Located(layout.survey, paths, stamp_keys, keep, tuple(missing)), evidence


def _field(record: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The field called ``name``: exactly, or else the only one that matches ignoring case."""
    fields = [f for f in record.get("fields", ()) if isinstance(f, dict) and "name" in f]
    for field in fields:
        if field["name"] == name:
            return field
    folded = [f for f in fields if str(f["name"]).lower() == name.lower()]
    return folded[0] if len(folded) == 1 else None


def _record_field(
    schema: dict[str, Any], name: str, namespace: str | None, named: NamedTypes
) -> tuple[str, dict[str, Any], str | None] | None:
    """A top-level field that holds a record (possibly nullable): (its name, the record, ns)."""
    field = _field(schema, name)
    if field is None:
        return None
    for node, inner in branches(field.get("type"), namespace, named):
        if isinstance(node, dict) and node.get("type") in ("record", "error"):
            return field["name"], node, inner
    return None


def _check(
    types: list[tuple[Any, str | None]], kind: Kind, named: NamedTypes
) -> tuple[bool, str | None]:
    """``(True, stamp_key)`` when every branch fits the kind (``stamp_key``: the bytes field of
    a cutout record, else None); ``(False, what the type is instead)`` for the message."""
    if not types:
        return False, "always null"
    stamp_key = None
    for node, namespace in types:
        if isinstance(node, str) and node in _ACCEPTS[kind]:
            continue
        if kind == "stamp" and isinstance(node, dict) and node.get("type") in ("record", "error"):
            data = _field(node, _STAMP_DATA)
            if data is None or any(
                t != "bytes" for t, _ in branches(data.get("type"), namespace, named)
            ):
                return False, "a record without stampData bytes"
            stamp_key = data["name"]
            continue
        return False, _describe(node)
    return True, stamp_key


def _describe(node: Any) -> str:
    if isinstance(node, dict):
        return f"{'an' if str(node.get('type'))[0] in 'aeiou' else 'a'} {node.get('type')}"
    return f"{'an' if str(node)[:1] in 'aeiou' else 'a'} {node}"


def _keep(keep: dict[str, Any], path: tuple[str, ...], leaf: dict[str, Any] | None) -> None:
    *parents, last = path
    node = keep
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = leaf
