"""Contract tests: the decoder against every real packet in ../shared/data/alerts.

The samples (see NOTICE.md there for sources and licences) are ZTF 3.3 and 4.02 alerts as ZTF
publishes them, the same re-published by Fink (extra fields, record name topLevelRecord, multi-
record and snappy containers), Rubin v10.0 alerts re-published by Fink, and tiny synthetic Rubin
packets in Confluent framing whose schemas are not included.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import gzip
import io
import json
import re
import threading
import warnings
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import pytest

from services.common.alerts import (
    Alert,
    Rejected,
    SchemaRegistryError,
    SchemaSource,
    decode_message,
)
from services.common.cutouts import decode_stamp, decode_stamp_astropy

ALERTS = Path(__file__).resolve().parents[2].parent / "shared/data/alerts"

pytestmark = pytest.mark.skipif(
    not ALERTS.is_dir(),
    reason=f"sample alerts not found at {ALERTS}: shared/ must be checked out beside the repo",
)

CUTOUT_FIELDS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")

# file -> (records, survey, schema versions). Written down by hand so a decoder that silently
# drops records, or a sample folder that changes, fails loudly.
CONTAINERS: dict[str, tuple[int, str, set[str]]] = {
    "ztf/datatest_ZTF19acihgng.avro": (1, "ztf", {"3.3"}),
    "ztf/datatest_ZTF19acxxwrs.avro": (1, "ztf", {"3.3"}),
    "ztf/datatest_ZTF19acyfkzd.avro": (1, "ztf", {"3.3"}),
    "ztf/datatest_ZTF19acyjzeo.avro": (1, "ztf", {"3.3"}),
    "ztf/datatest_avro_multi_alerts_other.avro": (3, "ztf", {"3.3"}),
    "ztf/ztf_20250302_programid1_ZTF17aaarzyp_2982177112815010003.v4_02.avro": (
        1,
        "ztf",
        {"4.02"},
    ),
    "ztf/ztf_public_20221229_ZTF18abfkwnk_2188216843315010016.v3_3.avro": (1, "ztf", {"3.3"}),
    "ztf-fink/datatest_avro_multi_alerts.avro": (11, "ztf", {"3.3"}),
    "ztf-fink/datatest_ztf_part-3-305711.avro": (31, "ztf", {"4.02"}),
    "ztf-fink/tests_data_fink-broker-sample-alert-1.avro": (1, "ztf", {"3.3"}),
    "ztf-fink/tests_data_fink-broker-sample-alert-2.avro": (1, "ztf", {"3.3"}),
    "ztf-fink/tests_data_fink-broker-sample-alert-3.avro": (1, "ztf", {"3.3"}),
    "ztf-fink/tests_data_fink-broker-sample-alert-4.avro": (1, "ztf", {"3.3"}),
    "ztf-fink/tests_sample.avro_part-00001-0f70696a-f8dd-40ab-89e7-e7f64c104e25-c000.avro": (
        54,
        "ztf",
        {"3.3"},
    ),
    "ztf-fink/tests_sample.avro_part-00002-0f70696a-f8dd-40ab-89e7-e7f64c104e25-c000.avro": (
        56,
        "ztf",
        {"3.3"},
    ),
    "rubin/datatest_lsst_part-2-918301.avro": (7, "rubin", {"10.0"}),
}
CONFLUENT_IDS = {  # file -> schema id in its 5-byte header (major*100+minor for LSST)
    "lsst.v7_0.avro": 700,
    "lsst.v7_1.avro": 701,
    "lsst.v7_2.avro": 702,
    "lsst.v7_3.avro": 703,
    "lsst.v7_4.avro": 704,
    "lsst.v8_0.avro": 800,
    "lsst.v9_0.avro": 900,
    "lsst.v10_0.avro": 1000,
    "lsst.v11_0.avro": 1100,
    "lsst.v11_1.avro": 1101,
    "rapid.v01_00.avro": 100,
}
ZTF_OBJECT_ID = re.compile(r"ZTF\d{2}[a-z]{7}")


def _read(relative: str) -> bytes:
    return (ALERTS / relative).read_bytes()


def _full_records(payload: bytes) -> list[dict[str, Any]]:
    """The reference: fastavro's own full decode, no projection, no caching."""
    return [r for r in fastavro.reader(io.BytesIO(payload)) if isinstance(r, dict)]


def _stamp_bytes(record: dict[str, Any], field: str) -> bytes:
    value = record[field]
    return value["stampData"] if isinstance(value, dict) else value


def _all_stamps() -> Iterator[tuple[str, bytes]]:
    for relative in CONTAINERS:
        for i, record in enumerate(_full_records(_read(relative))):
            for field in CUTOUT_FIELDS:
                yield f"{relative}[{i}].{field}", _stamp_bytes(record, field)


def test_the_hand_checked_samples_are_still_there() -> None:
    """Folders may gain packets (every one is decoded below); the ones checked by hand stay."""
    found = {str(p.relative_to(ALERTS)) for p in ALERTS.glob("*/*.avro")}
    expected = set(CONTAINERS) | {f"confluent-framed/{name}" for name in CONFLUENT_IDS}
    assert expected <= found


SAMPLE_FOLDERS = sorted(p.name for p in ALERTS.iterdir() if p.is_dir()) if ALERTS.is_dir() else []


@pytest.mark.parametrize("folder", SAMPLE_FOLDERS)
def test_every_container_in_every_sample_folder_decodes(folder: str) -> None:
    """Whatever a folder holds (its names, counts and archive forms are not known here), each
    Avro container decodes to one alert per record, equal to fastavro's full decode."""
    checked = 0
    for path in sorted((ALERTS / folder).rglob("*.avro")):
        payload = path.read_bytes()
        if payload[:1] == b"\x00":
            continue  # Confluent-framed: needs its schema (tested with the CONFLUENT_IDS below)
        results = decode_message(payload)
        rejected = [r for r in results if isinstance(r, Rejected)]
        assert not rejected, (path.name, rejected[:3])
        reference = _full_records(payload)
        assert len(results) == len(reference), path.name
        for alert, record in zip(results, reference, strict=True):
            assert isinstance(alert, Alert)
            assert alert.cutout_bytes == tuple(_stamp_bytes(record, f) for f in CUTOUT_FIELDS)
            measured = record.get("candidate") or record.get("diaSource") or record
            assert (alert.ra, alert.dec) == (measured["ra"], measured["dec"]), path.name
            if alert.survey == "ztf":
                assert alert.alert_id == str(record.get("candid") or measured["candid"])
                assert alert.observed_mjd == measured["jd"] - 2400000.5
                assert alert.magnitude == measured["magpsf"]
            checked += 1
    if folder != "confluent-framed":
        assert checked, f"no Avro container in {folder}"


def test_every_labelled_real_ztf_alert_decodes() -> None:
    """ztf-real/labels.csv names alerts by candid: each one decodes, as ZTF, with its object."""
    folder = ALERTS / "ztf-real"
    labels = folder / "labels.csv"
    if not labels.is_file():
        pytest.skip(f"{labels} not found")
    decoded: dict[str, Alert] = {}
    for path in folder.rglob("*.avro"):
        for result in decode_message(path.read_bytes()):
            assert isinstance(result, Alert) and result.survey == "ztf", (path.name, result)
            decoded[result.alert_id] = result
    with labels.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert rows
    for row in rows:
        alert = decoded[row["candid"]]
        assert alert.object_id == row["objectId"]
        assert alert.observed_mjd == pytest.approx(float(row["jd"]) - 2400000.5, abs=1e-6)


@pytest.mark.parametrize("relative", sorted(CONTAINERS))
def test_every_record_of_every_container_decodes(relative: str) -> None:
    count, survey, versions = CONTAINERS[relative]
    results = decode_message(_read(relative))

    assert len(results) == count
    rejected = [r for r in results if isinstance(r, Rejected)]
    assert not rejected, rejected[:3]
    alerts = [r for r in results if isinstance(r, Alert)]
    assert {a.survey for a in alerts} == {survey}
    assert {a.schema_version for a in alerts} == versions
    assert len({a.alert_id for a in alerts}) == count  # no record decoded twice
    for alert in alerts:
        assert alert.alert_id.isdigit() and int(alert.alert_id) > 0
        if survey == "ztf":
            assert ZTF_OBJECT_ID.fullmatch(alert.object_id), alert.object_id
        else:
            assert alert.object_id.isdigit()
        assert alert.ra is not None and 0.0 <= alert.ra < 360.0
        assert alert.dec is not None and -90.0 <= alert.dec <= 90.0
        assert alert.observed_mjd is not None and 58000 < alert.observed_mjd < 62000
        assert len(alert.cutouts) == 3 and len(alert.cutout_bytes) == 3
        for image, raw in zip(alert.cutouts, alert.cutout_bytes, strict=True):
            assert image.dtype == np.float32 and image.dtype.isnative
            assert image.ndim == 2 and min(image.shape) >= 1 and max(image.shape) <= 63
            assert np.isfinite(image).any()
            assert not image.flags.writeable
            assert isinstance(raw, bytes) and raw
        if survey == "rubin":
            assert [image.shape for image in alert.cutouts] == [(30, 30)] * 3


@pytest.mark.parametrize("relative", sorted(CONTAINERS))
def test_projected_decode_agrees_with_a_full_fastavro_decode(relative: str) -> None:
    """The reader-schema projection must not change a single value we keep."""
    payload = _read(relative)
    alerts = [r for r in decode_message(payload) if isinstance(r, Alert)]
    for alert, record in zip(alerts, _full_records(payload), strict=True):
        assert alert.cutout_bytes == tuple(_stamp_bytes(record, f) for f in CUTOUT_FIELDS)
        if alert.survey == "ztf":
            candidate = record["candidate"]
            assert alert.alert_id == str(record["candid"])
            assert alert.object_id == record["objectId"]
            assert alert.schema_version == record["schemavsn"]
            assert (alert.ra, alert.dec) == (candidate["ra"], candidate["dec"])
            assert alert.magnitude == candidate["magpsf"]
            assert alert.observed_mjd == candidate["jd"] - 2400000.5
        else:
            source = record["diaSource"]
            assert alert.alert_id == str(record["diaSourceId"])
            # solar-system sources: diaObjectId is 0 and the diaObject record all nulls
            expected_object = source["diaObjectId"] or source["ssObjectId"]
            assert alert.object_id == str(expected_object) and expected_object
            assert (alert.ra, alert.dec) == (source["ra"], source["dec"])
            assert alert.observed_mjd == source["midpointMjdTai"]
            flux = source["psfFlux"]
            if flux > 0:
                assert alert.magnitude == pytest.approx(31.4 - 2.5 * np.log10(flux))
            else:
                assert alert.magnitude is None


def test_inventory_of_the_samples() -> None:
    """Versions, counts and the awkward cases the samples are known to contain."""
    alerts = [
        r
        for relative in CONTAINERS
        for r in decode_message(_read(relative))
        if isinstance(r, Alert)
    ]
    by_survey = Counter((a.survey, a.schema_version) for a in alerts)
    assert by_survey == {("ztf", "3.3"): 133, ("ztf", "4.02"): 32, ("rubin", "10.0"): 7}
    shapes = Counter(image.shape for a in alerts for image in a.cutouts)
    assert shapes[(63, 63)] > 400
    assert shapes[(58, 63)] == 3  # stamps cut at a CCD edge come back at their real size
    with_nan = sum(bool(np.isnan(image).any()) for a in alerts for image in a.cutouts)
    assert with_nan > 50  # NaN pixels are kept, not rejected
    rubin = [a for a in alerts if a.survey == "rubin"]
    assert any(a.magnitude is None for a in rubin)  # negative difference flux: no magnitude
    assert any(a.magnitude is not None and 15 < a.magnitude < 30 for a in rubin)


def test_fast_fits_path_is_bit_identical_to_astropy_on_every_sample_stamp() -> None:
    fits = pytest.importorskip("astropy.io.fits")
    # ZTF writes "SIMPLE  =  T" off the fixed-format column; astropy reads it and warns
    warnings.simplefilter("ignore", fits.verify.VerifyWarning)
    checked = 0
    for where, stamp in _all_stamps():
        fast = decode_stamp(stamp, fallback=False)  # raises if the fast path gave up
        reference = decode_stamp_astropy(stamp)
        assert fast.dtype == reference.dtype == np.float32, where
        assert fast.shape == reference.shape, where
        assert np.array_equal(fast, reference, equal_nan=True), where
        # and against astropy's own HDU data, without our post-processing in between
        raw = gzip.decompress(stamp) if stamp[:2] == b"\x1f\x8b" else stamp
        with fits.open(io.BytesIO(raw)) as hdus:
            native = np.asarray(hdus[0].data)
        assert native.dtype == np.dtype(">f4"), where
        assert np.array_equal(fast, native.astype(np.float32), equal_nan=True), where
        assert fast.tobytes() == native.astype(np.float32).tobytes(), where  # NaN payloads too
        checked += 1
    assert checked == 3 * sum(count for count, _, _ in CONTAINERS.values())


# --- Confluent framing -------------------------------------------------------------------------

# Fields that lsst/alert_packet v10.0 declares non-nullable. Fink's re-published v10.0 schema
# keeps every field, in order, with the same types, but makes all of them ["type", "null"]; with
# these names the original writer schema can be rebuilt exactly (the contract: the rebuilt schema
# decodes the synthetic v10.0 packet to its last byte).
V10_REQUIRED = {
    "value": {"diaSourceId", "diaSource"},
    "diaSource": {
        *("diaSourceId", "visit", "detector", "midpointMjdTai", "ra", "dec", "x", "y"),
        "timeProcessedMjdTai",
    },
    "prvDiaForcedSources": {
        *("diaForcedSourceId", "diaObjectId", "ra", "dec", "visit", "detector"),
        *("midpointMjdTai", "timeProcessedMjdTai"),
    },
    "diaObject": {"diaObjectId", "validityStartMjdTai", "ra", "dec", "nDiaSources"},
    "ssSource": {"diaSourceId", "ssObjectId", "eclLambda", "eclBeta", "galLon", "galLat"},
    "mpc_orbits": {
        *("id", "designation", "packed_primary_provisional_designation"),
        "unpacked_primary_provisional_designation",
    },
}
V10_REQUIRED["prvDiaSources"] = V10_REQUIRED["diaSource"]


def _unfink(node: Any) -> Any:
    if isinstance(node, list):  # Fink: ["type", "null"] everywhere, array items included
        branches = [b for b in node if b != "null"]
        return _unfink(branches[0]) if len(branches) == 1 else [_unfink(b) for b in node]
    if isinstance(node, dict) and node.get("type") == "record":
        required = V10_REQUIRED[node["name"].rsplit(".", 1)[-1]]
        fields = []
        for field in node["fields"]:
            kind = _unfink(field["type"])
            fields.append(
                {
                    "name": field["name"],
                    "type": kind if field["name"] in required else ["null", kind],
                }
            )
        return {"type": "record", "name": node["name"], "fields": fields}
    if isinstance(node, dict) and node.get("type") == "array":
        return {"type": "array", "items": _unfink(node["items"])}
    return node


@pytest.fixture(scope="module")
def v10_schema() -> dict[str, Any]:
    """The Rubin v10.0 writer schema, rebuilt from the Fink Rubin container's header."""
    header = fastavro.reader(io.BytesIO(_read("rubin/datatest_lsst_part-2-918301.avro")))
    fink = json.loads(header.metadata["avro.schema"])
    names = [field["name"] for field in fink["fields"]]
    rubin_part = {**fink, "fields": fink["fields"][: names.index("cutoutTemplate") + 1]}
    schema: dict[str, Any] = _unfink(rubin_part)
    schema["name"] = "lsst.v10_0.alert"  # what the registry's schema is called
    return schema


@pytest.fixture
def schema_dir(tmp_path: Path, v10_schema: dict[str, Any]) -> Path:
    (tmp_path / "1000.avsc").write_text(json.dumps(v10_schema))
    return tmp_path


def _framed(schema_id: int, schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), record)
    return b"\x00" + schema_id.to_bytes(4, "big") + body.getvalue()


def _with_real_stamps(v10_schema: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The synthetic v10.0 record with the stamps of a real Rubin alert put in."""
    payload = _read("confluent-framed/lsst.v10_0.avro")
    record = fastavro.schemaless_reader(io.BytesIO(payload[5:]), fastavro.parse_schema(v10_schema))
    assert isinstance(record, dict)
    real = _full_records(_read("rubin/datatest_lsst_part-2-918301.avro"))[1]
    record = copy.deepcopy(record)
    for field in CUTOUT_FIELDS:
        record[field] = real[field]
    return record, real


@pytest.mark.parametrize("name", sorted(CONFLUENT_IDS))
def test_confluent_samples_without_schemas_are_unknown_schema_ids(name: str) -> None:
    payload = _read(f"confluent-framed/{name}")
    assert payload[0] == 0 and int.from_bytes(payload[1:5], "big") == CONFLUENT_IDS[name]
    for schemas in (None, SchemaSource()):
        [result] = decode_message(payload, schemas)
        assert isinstance(result, Rejected)
        assert result.reason == "unknown_schema_id"
        assert f"schema id {CONFLUENT_IDS[name]}" in result.message


def test_confluent_v10_sample_decodes_with_a_schema_directory(schema_dir: Path) -> None:
    schemas = SchemaSource(schema_dir)
    payload = _read("confluent-framed/lsst.v10_0.avro")
    [result] = decode_message(payload, schemas)
    # the synthetic packet decodes to its last byte but carries no stamps: a per-record
    # rejection that already knows the alert id
    assert result == Rejected("missing_cutout", "cutoutScience: no stamp", 0, "1231321321")
    for name, schema_id in CONFLUENT_IDS.items():  # the directory only knows id 1000
        if schema_id != 1000:
            [other] = decode_message(_read(f"confluent-framed/{name}"), schemas)
            assert isinstance(other, Rejected) and other.reason == "unknown_schema_id"


def test_confluent_v10_packet_with_stamps_decodes_to_an_alert(
    schema_dir: Path, v10_schema: dict[str, Any]
) -> None:
    record, real = _with_real_stamps(v10_schema)
    [alert] = decode_message(_framed(1000, v10_schema, record), SchemaSource(schema_dir))
    assert isinstance(alert, Alert), alert
    assert (alert.survey, alert.schema_version) == ("rubin", "10.0")
    assert alert.alert_id == "1231321321"
    assert alert.object_id == str(record["diaObject"]["diaObjectId"])
    source = record["diaSource"]
    assert (alert.ra, alert.dec) == (source["ra"], source["dec"])
    assert alert.magnitude == pytest.approx(31.4 - 2.5 * np.log10(source["psfFlux"]))
    assert alert.observed_mjd == source["midpointMjdTai"]
    assert alert.cutout_bytes == tuple(real[f] for f in CUTOUT_FIELDS)
    assert [image.shape for image in alert.cutouts] == [(30, 30)] * 3


def test_schema_directory_layouts(tmp_path: Path, v10_schema: dict[str, Any]) -> None:
    record, _ = _with_real_stamps(v10_schema)
    text = json.dumps(v10_schema)
    # a saved registry answer, a schemas.json map, and the lsst/alert_packet tree layout
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1001.json").write_text(json.dumps({"schema": text}))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "schemas.json").write_text(json.dumps({"1002": v10_schema, "1003": text}))
    tree = tmp_path / "c" / "10" / "4"
    tree.mkdir(parents=True)
    (tree / "lsst.v10_4.alert.avsc").write_text(text)
    cases = [("a", 1001), ("b", 1002), ("b", 1003), ("c", 1004)]
    for folder, schema_id in cases:
        source = SchemaSource(tmp_path / folder)
        assert schema_id in source.local_ids
        [alert] = decode_message(_framed(schema_id, v10_schema, record), source)
        assert isinstance(alert, Alert), (folder, alert)
        assert alert.schema_version == "10.0"  # from the schema's name, not the id


# --- Schema Registry ---------------------------------------------------------------------------


class _Registry:
    """A tiny Confluent-compatible registry on 127.0.0.1 that counts its requests."""

    def __init__(self, schemas: dict[int, str], fail_with: int | None = None) -> None:
        self.schemas = schemas
        self.fail_with = fail_with
        self.requests: list[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                registry.requests.append(self.path)
                match = re.fullmatch(r"/schemas/ids/(\d+)", self.path)
                if registry.fail_with is not None:
                    self._send(registry.fail_with, {"error_code": 50001, "message": "down"})
                elif match and int(match[1]) in registry.schemas:
                    self._send(200, {"schema": registry.schemas[int(match[1])]})
                else:
                    self._send(404, {"error_code": 40403, "message": "Schema not found"})

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Registry:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def test_registry_lookup_is_cached_and_unknown_ids_are_rejected(
    v10_schema: dict[str, Any],
) -> None:
    record, _ = _with_real_stamps(v10_schema)
    packet = _framed(1000, v10_schema, record)
    now = [0.0]
    with _Registry({1000: json.dumps(v10_schema)}) as registry:
        schemas = SchemaSource(
            registry_url=registry.url + "/", negative_ttl_s=30, clock=lambda: now[0]
        )
        for _ in range(3):
            [alert] = decode_message(packet, schemas)
            assert isinstance(alert, Alert) and alert.schema_version == "10.0"
        assert registry.requests == ["/schemas/ids/1000"]  # fetched once, then cached

        unknown = _read("confluent-framed/lsst.v11_0.avro")
        for _ in range(3):
            [result] = decode_message(unknown, schemas)
            assert isinstance(result, Rejected) and result.reason == "unknown_schema_id"
        assert registry.requests.count("/schemas/ids/1100") == 1  # 404 remembered for a while
        now[0] += 31
        decode_message(unknown, schemas)
        assert registry.requests.count("/schemas/ids/1100") == 2  # ...and asked again later


def test_registry_outage_raises_instead_of_dead_lettering(v10_schema: dict[str, Any]) -> None:
    packet = _read("confluent-framed/lsst.v10_0.avro")
    with _Registry({}, fail_with=500) as registry:
        with pytest.raises(SchemaRegistryError, match="HTTP 500"):
            decode_message(packet, SchemaSource(registry_url=registry.url))
        url = registry.url
    # the server is gone now: connection refused is an outage too, not an unknown id
    with pytest.raises(SchemaRegistryError):
        decode_message(packet, SchemaSource(registry_url=url, timeout_s=2))


def test_local_directory_wins_over_the_registry(schema_dir: Path) -> None:
    with _Registry({}) as registry:
        schemas = SchemaSource(schema_dir, registry.url)
        [result] = decode_message(_read("confluent-framed/lsst.v10_0.avro"), schemas)
        assert isinstance(result, Rejected) and result.reason == "missing_cutout"
        assert registry.requests == []


@pytest.mark.parametrize("relative", sorted(CONTAINERS))
def test_every_sample_schema_takes_the_compiled_reader_and_both_readers_agree(
    relative: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cavro is the fast path for every real schema; fastavro, the fallback for schemas cavro
    refuses, must give the very same alerts."""
    from services.common.decoding import plans

    payload = _read(relative)
    fast = decode_message(payload)
    header = fastavro.reader(io.BytesIO(payload))
    plan = plans.plan_for(json.dumps(header.writer_schema))
    assert plan.fast is not None, "cavro refused a real alert schema"
    original = plans.plan_for
    monkeypatch.setattr(
        plans, "plan_for", lambda text: dataclasses.replace(original(text), fast=None)
    )
    slow = decode_message(payload)
    assert [type(r) for r in fast] == [type(r) for r in slow]
    for a, b in zip(fast, slow, strict=True):
        if isinstance(a, Alert) and isinstance(b, Alert):
            assert (a.alert_id, a.object_id, a.ra, a.dec, a.magnitude, a.observed_mjd) == (
                b.alert_id,
                b.object_id,
                b.ra,
                b.dec,
                b.magnitude,
                b.observed_mjd,
            )
            assert a.cutout_bytes == b.cutout_bytes
