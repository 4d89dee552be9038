"""Alerts rewritten by archives decode as the alerts they are; alerts that lack something do not.

Every case starts from a real packet (../shared/data/alerts), rewrites its writer schema and its
records the way an archive or a broker might (Spark's record names, fields reordered, pruned,
added, made nullable or not, ids and numbers retyped, cutouts as plain bytes, ids only inside
``candidate``, lower-cased column names), writes a new container with fastavro and decodes it:
the alerts must equal those of the original packet. Then each required field is taken away, from
the schema and from one record, and the rejection must name it.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
import fastavro.schema
import numpy as np
import pytest

from services.common.alerts import Alert, Rejected, decode_message
from services.common.decoding import plans
from tests.samples import (
    FINK_MULTI,
    RUBIN_FILE,
    ZTF_FILE,
    ZTF_MULTI,
    needs_samples,
    write_container,
)

pytestmark = needs_samples

CUTOUTS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
Schema = dict[str, Any]
Record = dict[str, Any]
Form = Callable[[Schema, list[Record]], tuple[Schema, list[Record]]]


# --- reading and writing -----------------------------------------------------------------------


def _clean(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _clean(v) for k, v in node.items() if not k.startswith("__")}
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return node


def _sample(path: Path) -> tuple[Schema, list[Record]]:
    """The writer schema with every named type written out in place, and the records.

    A type used in several places (ZTF's one cutout record for the three cutouts) gets a name of
    its own in each, so that every form below can rewrite any record without breaking another.
    """
    reader = fastavro.reader(io.BytesIO(path.read_bytes()))
    schema = _clean(fastavro.schema.expand_schema(json.loads(reader.metadata["avro.schema"])))
    seen: set[str] = set()

    def unique(record: Schema, at: tuple[str, ...]) -> Schema:
        name = record["name"]
        if name in seen:
            name = f"{name}_{'_'.join(at)}"
        seen.add(name)
        return {**record, "name": name}

    return _map_records(schema, unique), [r for r in reader if isinstance(r, dict)]


def _decode(schema: Schema, records: list[Record]) -> list[Alert | Rejected]:
    return decode_message(write_container(schema, records))


def _map_records(node: Any, change: Callable[[Schema, tuple[str, ...]], Schema], at=()) -> Any:
    """Rebuild a (written-out) schema bottom-up, letting ``change`` rewrite every record."""
    if isinstance(node, list):
        return [_map_records(branch, change, at) for branch in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if kind == "record":
        fields = [
            {**f, "type": _map_records(f["type"], change, (*at, f["name"]))} for f in node["fields"]
        ]
        return change({**node, "fields": fields}, at)
    if kind == "array":
        return {**node, "items": _map_records(node["items"], change, at)}
    if kind == "map":
        return {**node, "values": _map_records(node["values"], change, at)}
    if isinstance(kind, dict | list):
        return {**node, "type": _map_records(kind, change, at)}
    return node


def _field(schema: Schema, name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def _record_of(field_type: Any) -> Schema:
    branches = field_type if isinstance(field_type, list) else [field_type]
    return next(b for b in branches if isinstance(b, dict) and b.get("type") == "record")


# --- the forms -----------------------------------------------------------------------------------


def spark_names(schema: Schema, records: list[Record]) -> tuple[Schema, list[Record]]:
    """Spark's ``topLevelRecord``, nested records named after their field path."""

    def rename(record: Schema, at: tuple[str, ...]) -> Schema:
        record = {k: v for k, v in record.items() if k not in ("namespace", "doc", "version")}
        return {**record, "name": ".".join(("topLevelRecord", *at))}

    return _map_records(schema, rename), records


def other_names(schema: Schema, records: list[Record]) -> tuple[Schema, list[Record]]:
    """Any names and namespaces at all: nothing may depend on them."""

    def rename(record: Schema, at: tuple[str, ...]) -> Schema:
        record = {k: v for k, v in record.items() if k != "namespace"}
        name = "Alert" if not at else "R_" + "_".join(at)
        return {**record, "name": name, "namespace": "org.example.archive.v9"}

    return _map_records(schema, rename), records


def reordered(schema: Schema, records: list[Record]) -> tuple[Schema, list[Record]]:
    return _map_records(schema, lambda r, _: {**r, "fields": r["fields"][::-1]}), records


def nullability_flipped(schema: Schema, records: list[Record]) -> tuple[Schema, list[Record]]:
    """Every field nullable, null first for some and last for others; existing unions flipped."""

    def flip(record: Schema, _: tuple[str, ...]) -> Schema:
        fields = []
        for i, field in enumerate(record["fields"]):
            kind = field["type"]
            if isinstance(kind, list):
                kind = kind[::-1] if "null" in kind else [*kind, "null"]
            else:
                kind = ["null", kind] if i % 2 else [kind, "null"]
            fields.append({"name": field["name"], "type": kind})  # defaults dropped on purpose
        return {**record, "fields": fields}

    return _map_records(schema, flip), records


def non_nullable(schema: Schema, records: list[Record]) -> tuple[Schema, list[Record]]:
    """Nullable where the records hold a value: the top-level and candidate unions lose null."""
    top = {
        f["name"] for f in schema["fields"] if all(r.get(f["name"]) is not None for r in records)
    }

    def strict(record: Schema, at: tuple[str, ...]) -> Schema:
        fields = []
        for field in record["fields"]:
            kind = field["type"]
            values = [r.get(field["name"]) for r in records] if not at else []
            keep = not at and field["name"] in top and all(v is not None for v in values)
            if isinstance(kind, list) and keep and len([b for b in kind if b != "null"]) == 1:
                kind = next(b for b in kind if b != "null")
            fields.append({"name": field["name"], "type": kind})
        return {**record, "fields": fields}

    return _map_records(schema, strict), records


ZTF_KEPT = {"candid", "ra", "dec", "jd", "magpsf", "fid"}


def pruned(schema: Schema, records: list[Record]) -> tuple[Schema, list[Record]]:
    """History, provenance, the repeated top-level candid and all but a few candidate fields go."""
    gone = {"candid", "prv_candidates", "fp_hists", "publisher", "schemavsn", "timestamp"}

    def prune(record: Schema, at: tuple[str, ...]) -> Schema:
        if at == ():
            fields = [f for f in record["fields"] if f["name"] not in gone]
        elif at == ("candidate",):
            fields = [f for f in record["fields"] if f["name"] in ZTF_KEPT]
        elif at[0] in CUTOUTS:
            fields = [f for f in record["fields"] if f["name"] == "stampData"]
        else:
            fields = record["fields"]
        return {**record, "fields": fields}

    out = []
    for record in records:
        record = {k: v for k, v in record.items() if k not in gone}
        record["candidate"] = {k: v for k, v in record["candidate"].items() if k in ZTF_KEPT}
        out.append(record)
    return _map_records(schema, prune), out


def extended(schema: Schema, records: list[Record]) -> tuple[Schema, list[Record]]:
    """Columns added before, between and after the alert's own, and inside candidate."""
    xmatch = {
        "type": "record",
        "name": "archive.xmatch",
        "fields": [{"name": "name", "type": "string"}, {"name": "dist", "type": ["null", "float"]}],
    }
    added = [
        ({"name": "ingest_mjd", "type": "double"}, 60000.25),
        ({"name": "scores", "type": {"type": "map", "values": "float"}}, {"snia": 0.5}),
        ({"name": "xmatch", "type": ["null", xmatch]}, {"name": "Gaia", "dist": 0.2}),
        ({"name": "tags", "type": {"type": "array", "items": "string"}}, ["a", "b"]),
    ]
    schema = copy.deepcopy(schema)
    fields = schema["fields"]
    for position, (field, _) in zip((0, len(fields) // 2, len(fields) + 2, 3), added, strict=True):
        fields.insert(position, field)
    candidate = _record_of(_field(schema, "candidate")["type"])
    candidate["fields"].insert(1, {"name": "archive_flag", "type": "boolean"})
    out = []
    for record in records:
        record = {**record, **{field["name"]: value for field, value in added}}
        record["candidate"] = {**record["candidate"], "archive_flag": True}
        out.append(record)
    return schema, out


def retyped(schema: Schema, records: list[Record]) -> tuple[Schema, list[Record]]:
    """Ids as strings, magpsf widened to double, ra/dec narrowed to float, fid to long."""
    new_types = {"candid": "string", "magpsf": "double", "ra": "float", "dec": "float"}
    new_types["fid"] = "long"

    def retype(record: Schema, at: tuple[str, ...]) -> Schema:
        if at not in ((), ("candidate",)):
            return record
        fields = []
        for field in record["fields"]:
            kind = new_types.get(field["name"])
            if kind is not None:
                nullable = isinstance(field["type"], list)
                field = {"name": field["name"], "type": ["null", kind] if nullable else kind}
            fields.append(field)
        return {**record, "fields": fields}

    out = []
    for record in records:
        record = {**record, "candidate": dict(record["candidate"])}
        for holder in (record, record["candidate"]):
            if holder.get("candid") is not None:
                holder["candid"] = str(holder["candid"])
        out.append(record)
    return _map_records(schema, retype), out


def bytes_cutouts(schema: Schema, records: list[Record]) -> tuple[Schema, list[Record]]:
    """Cutouts as plain bytes, one of them nullable, the others not."""
    schema = copy.deepcopy(schema)
    for name in CUTOUTS:
        field = _field(schema, name)
        field.pop("default", None)
        field["type"] = ["bytes", "null"] if name == CUTOUTS[1] else "bytes"
    out = [{**r, **{name: r[name]["stampData"] for name in CUTOUTS}} for r in records]
    return schema, out


def lower_case(schema: Schema, records: list[Record]) -> tuple[Schema, list[Record]]:
    """Every column name lower-cased, as a Hive metastore stores them."""

    def lower(record: Schema, _: tuple[str, ...]) -> Schema:
        return {**record, "fields": [{**f, "name": f["name"].lower()} for f in record["fields"]]}

    def keys(value: Any) -> Any:
        if isinstance(value, dict):
            return {k.lower(): keys(v) for k, v in value.items()}
        if isinstance(value, list):
            return [keys(v) for v in value]
        return value

    return _map_records(schema, lower), [keys(r) for r in records]


def flattened(schema: Schema, records: list[Record]) -> tuple[Schema, list[Record]]:
    """No candidate record: its fields (ids, position, time, magnitude) at the top level."""
    candidate = _record_of(_field(schema, "candidate")["type"])
    hoisted = [f for f in candidate["fields"] if f["name"] in ZTF_KEPT - {"candid"}]
    fields = [f for f in schema["fields"] if f["name"] not in ("candidate", "prv_candidates")]
    out = []
    for record in records:
        flat = {k: v for k, v in record.items() if k not in ("candidate", "prv_candidates")}
        flat.update({f["name"]: record["candidate"][f["name"]] for f in hoisted})
        out.append(flat)
    return {**schema, "fields": fields + hoisted}, out


def archive(schema: Schema, records: list[Record]) -> tuple[Schema, list[Record]]:
    """All of it at once, the way a real archive piles rewrites on rewrites."""
    for form in (pruned, extended, retyped, bytes_cutouts, spark_names, nullability_flipped):
        schema, records = form(schema, records)
    return reordered(schema, records)


ZTF_FORMS: list[Form] = [
    spark_names,
    other_names,
    reordered,
    nullability_flipped,
    non_nullable,
    pruned,
    extended,
    retyped,
    bytes_cutouts,
    lower_case,
    flattened,
    archive,
]
APPROXIMATE = {retyped, archive}  # ra/dec narrowed to float32
NO_VERSION = {pruned, archive}  # schemavsn dropped: the version comes from the schema name


def _assert_same(
    new: list[Alert | Rejected], old: list[Alert | Rejected], *, approx: bool, version: bool
) -> None:
    assert all(isinstance(a, Alert) for a in new), new
    assert len(new) == len(old)
    for a, b in zip(new, old, strict=True):
        assert isinstance(a, Alert) and isinstance(b, Alert)
        assert (a.alert_id, a.object_id, a.survey) == (b.alert_id, b.object_id, b.survey)
        assert a.observed_mjd == b.observed_mjd
        if version:
            assert a.schema_version == b.schema_version
        if approx:
            assert a.ra == pytest.approx(b.ra, rel=1e-6)
            assert a.dec == pytest.approx(b.dec, rel=1e-6, abs=1e-6)
            assert a.magnitude == pytest.approx(b.magnitude, rel=1e-6)
        else:
            assert (a.ra, a.dec, a.magnitude) == (b.ra, b.dec, b.magnitude)
        assert a.cutout_bytes == b.cutout_bytes
        for x, y in zip(a.cutouts, b.cutouts, strict=True):
            assert np.array_equal(x, y, equal_nan=True)


def _compiled(schema: Schema) -> bool:
    """Whether the decoder reads this writer schema on its fast (cavro) path."""
    return plans.plan_for(json.dumps(schema)).fast is not None


@pytest.mark.parametrize("path", [ZTF_FILE, ZTF_MULTI, FINK_MULTI], ids=["ztf4", "ztf3", "fink"])
@pytest.mark.parametrize("form", ZTF_FORMS, ids=lambda f: f.__name__)
def test_rewritten_ztf_alerts_decode_as_the_original(form: Form, path: Path) -> None:
    original = decode_message(path.read_bytes())
    schema, records = form(*_sample(path))
    _assert_same(
        _decode(schema, records),
        original,
        approx=form in APPROXIMATE,
        version=form not in NO_VERSION,
    )
    assert _compiled(schema), "a rewritten schema fell off the fast path"


# --- Rubin -----------------------------------------------------------------------------------


def rubin_pruned(schema: Schema, records: list[Record]) -> tuple[Schema, list[Record]]:
    """Only what an alert needs: diaSourceId only inside diaSource, no history, no Fink fields."""
    kept = {"diaSource", "diaObject", *CUTOUTS}
    fields = [f for f in schema["fields"] if f["name"] in kept]
    return {**schema, "fields": fields}, [{k: r[k] for k in kept} for r in records]


def rubin_alert_id(schema: Schema, records: list[Record]) -> tuple[Schema, list[Record]]:
    """The pre-v8 top-level ``alertId`` instead of ``diaSourceId``, as a string."""
    schema = copy.deepcopy(schema)
    field = _field(schema, "diaSourceId")
    field.update(name="alertId", type="string")
    out = []
    for record in records:
        record = dict(record)
        record["alertId"] = str(record.pop("diaSourceId"))
        out.append(record)
    return schema, out


def rubin_old_names(schema: Schema, records: list[Record]) -> tuple[Schema, list[Record]]:
    """v3/v4 spellings inside diaSource: decl, midPointTai, psFlux."""
    renames = {"dec": "decl", "midpointMjdTai": "midPointTai", "psfFlux": "psFlux"}

    def rename(record: Schema, at: tuple[str, ...]) -> Schema:
        if at != ("diaSource",):
            return record
        fields = [{**f, "name": renames.get(f["name"], f["name"])} for f in record["fields"]]
        return {**record, "fields": fields}

    out = []
    for record in records:
        source = {renames.get(k, k): v for k, v in record["diaSource"].items()}
        out.append({**record, "diaSource": source})
    return _map_records(schema, rename), out


def rubin_archive(schema: Schema, records: list[Record]) -> tuple[Schema, list[Record]]:
    for form in (rubin_pruned, other_names, nullability_flipped):
        schema, records = form(schema, records)
    return reordered(schema, records)


@pytest.mark.parametrize(
    "form",
    [other_names, reordered, nullability_flipped, rubin_pruned, rubin_alert_id, rubin_old_names]
    + [rubin_archive],
    ids=lambda f: f.__name__,
)
def test_rewritten_rubin_alerts_decode_as_the_original(form: Form) -> None:
    original = decode_message(RUBIN_FILE.read_bytes())[:3]
    schema, records = _sample(RUBIN_FILE)
    schema, records = form(schema, records[:3])
    version = form not in (rubin_pruned, rubin_archive)  # lsst_schema_version is Fink's column
    _assert_same(_decode(schema, records), original, approx=False, version=version)
    assert _compiled(schema)


def test_rubin_without_object_or_flux_still_decodes() -> None:
    """Object and magnitude are optional for Rubin: unassociated sources and negative fluxes."""
    schema, records = rubin_pruned(*_sample(RUBIN_FILE))
    schema = copy.deepcopy(schema)
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "diaObject"]
    source = _record_of(_field(schema, "diaSource")["type"])
    drop = {"psfFlux", "diaObjectId", "ssObjectId"}
    source["fields"] = [f for f in source["fields"] if f["name"] not in drop]
    records = [
        {**{k: v for k, v in r.items() if k != "diaObject"}, "diaSource": r["diaSource"]}
        for r in records[:2]
    ]
    alerts = _decode(schema, records)
    assert all(isinstance(a, Alert) and a.object_id == "" and a.magnitude is None for a in alerts)


# --- what is missing is named ------------------------------------------------------------------


def _without(schema: Schema, where: tuple[str, ...], name: str) -> Schema:
    schema = copy.deepcopy(schema)
    record = schema
    for step in where:
        record = _record_of(_field(record, step)["type"])
    record["fields"] = [f for f in record["fields"] if f["name"] != name]
    return schema


ZTF_REQUIRED = [
    ((), "candid", "candid"),  # with candidate.candid also gone (below)
    ((), "objectId", "objectId"),
    (("candidate",), "ra", "candidate.ra"),
    (("candidate",), "dec", "candidate.dec"),
    (("candidate",), "jd", "candidate.jd"),
    (("candidate",), "magpsf", "candidate.magpsf"),
    *(((), name, name) for name in CUTOUTS),
]


@pytest.mark.parametrize(("where", "name", "label"), ZTF_REQUIRED, ids=lambda x: str(x))
def test_a_ztf_schema_without_a_required_field_is_refused_naming_it(
    where: tuple[str, ...], name: str, label: str
) -> None:
    schema, records = _sample(ZTF_MULTI)
    schema = _without(schema, where, name)
    if name == "candid":
        schema = _without(schema, ("candidate",), "candid")
    [rejected] = _decode(schema, records)  # fastavro writes the records without that field
    assert isinstance(rejected, Rejected), rejected
    assert (rejected.reason, rejected.index) == ("missing_field", None)
    assert rejected.message.endswith(f"lacks {label}"), rejected.message


def test_ids_only_inside_candidate_are_enough() -> None:
    schema, records = _sample(ZTF_MULTI)
    alerts = _decode(_without(schema, (), "candid"), records)
    assert [a.alert_id for a in alerts if isinstance(a, Alert)] == [
        str(r["candid"]) for r in records
    ]


def test_fields_of_the_wrong_type_are_named() -> None:
    schema, records = _sample(ZTF_MULTI)
    schema = copy.deepcopy(schema)
    _field(schema, "candid")["type"] = "double"  # a float id would lose digits
    _record_of(_field(schema, "cutoutScience")["type"])["fields"] = [
        {"name": "fileName", "type": "string"}
    ]
    candidate = _record_of(_field(schema, "candidate")["type"])
    candidate["fields"] = [f for f in candidate["fields"] if f["name"] != "candid"]
    records = [{**r, "candid": float(r["candid"])} for r in records]
    [rejected] = _decode(schema, records)
    assert isinstance(rejected, Rejected) and rejected.reason == "missing_field"
    assert "candid is a double, not an integer or string id" in rejected.message
    assert "cutoutScience is a record without stampData bytes" in rejected.message


@pytest.mark.parametrize(
    ("where", "name", "label"),
    [
        ((), "diaSourceId", "diaSourceId"),  # with diaSource.diaSourceId also gone
        (("diaSource",), "ra", "diaSource.ra"),
        (("diaSource",), "dec", "diaSource.dec"),
        (("diaSource",), "midpointMjdTai", "diaSource.midpointMjdTai"),
        *(((), name, name) for name in CUTOUTS),
    ],
    ids=lambda x: str(x),
)
def test_a_rubin_schema_without_a_required_field_is_refused_naming_it(
    where: tuple[str, ...], name: str, label: str
) -> None:
    schema, records = rubin_pruned(*_sample(RUBIN_FILE))
    schema = _without(schema, where, name)
    if name == "diaSourceId":
        schema = _without(schema, ("diaSource",), "diaSourceId")
    [rejected] = _decode(schema, records[:2])
    assert isinstance(rejected, Rejected), rejected
    assert (rejected.reason, rejected.index) == ("missing_field", None)
    assert rejected.message.endswith(f"lacks {label}"), rejected.message


def _set(record: Record, path: tuple[str, ...], value: Any) -> None:
    holder = record
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = value


@pytest.mark.parametrize(
    ("paths", "reason", "named"),
    [
        ([("candid",), ("candidate", "candid")], "missing_field", "candid and candidate.candid"),
        ([("objectId",)], "missing_field", "objectId is null"),
        ([("candidate", "ra")], "missing_field", "candidate.ra is null"),
        ([("candidate", "dec")], "missing_field", "candidate.dec is null"),
        ([("candidate", "jd")], "missing_field", "candidate.jd is null"),
        ([("candidate", "magpsf")], "missing_field", "candidate.magpsf is null"),
        ([("candidate",)], "missing_field", "candidate.ra is null"),
        *(([(name,)], "missing_cutout", f"{name}: no stamp") for name in CUTOUTS),
        ([("cutoutScience", "stampData")], "missing_cutout", "cutoutScience: no stamp"),
    ],
    ids=lambda x: str(x),
)
def test_a_ztf_record_with_a_required_value_null_is_rejected_alone(
    paths: list[tuple[str, ...]], reason: str, named: str
) -> None:
    schema, records = nullability_flipped(*_sample(ZTF_MULTI))
    records = copy.deepcopy(records)
    for path in paths:
        _set(records[1], path, None)
    results = _decode(schema, records)
    assert [type(r) for r in results] == [Alert, Rejected, Alert]
    rejected = results[1]
    assert isinstance(rejected, Rejected)
    assert (rejected.reason, rejected.index) == (reason, 1)
    assert named in rejected.message
    if paths[0][0] != "candid":
        assert rejected.alert_id == str(records[1]["candid"])


@pytest.mark.parametrize(
    ("path", "named"),
    [
        (("diaSource", "ra"), "diaSource.ra is null"),
        (("diaSource", "midpointMjdTai"), "diaSource.midpointMjdTai is null"),
    ],
)
def test_a_rubin_record_with_a_required_value_null_is_rejected_alone(
    path: tuple[str, ...], named: str
) -> None:
    schema, records = rubin_pruned(*_sample(RUBIN_FILE))
    schema, records = nullability_flipped(schema, copy.deepcopy(records[:2]))
    _set(records[0], path, None)
    first, second = _decode(schema, records)
    assert isinstance(first, Rejected) and (first.reason, first.index) == ("missing_field", 0)
    assert named in first.message
    assert first.alert_id == str(records[0]["diaSource"]["diaSourceId"])
    assert isinstance(second, Alert)


def test_records_that_look_like_no_alert_stay_unknown_survey() -> None:
    schema, records = _sample(ZTF_FILE)
    # the three cutouts alone, without any id, time or measurement record, are not an alert
    fields = [f for f in schema["fields"] if f["name"] in CUTOUTS]
    [rejected] = _decode(
        {**schema, "fields": fields}, [{k: r[k] for k in CUTOUTS} for r in records]
    )
    assert isinstance(rejected, Rejected) and rejected.reason == "unknown_survey"
