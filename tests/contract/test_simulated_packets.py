"""Contract: simulated packets are ZTF packets. Our decoder reads every one of them (3 cutouts of
63x63, equal to the simulator's own pixels), the fast FITS path matches astropy bit for bit on
their stamps, fastavro reads them with the real ZTF 4.02 writer schema, and (where the real
samples are checked out beside the repo) the container header and the stamp encoding are the
same bytes as in a real ZTF 4.02 alert."""

from __future__ import annotations

import gzip
import io
import json
import re
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import pytest

from services.common.alerts import Alert, Rejected, decode_message
from services.common.cutouts import decode_stamp, decode_stamp_astropy
from services.tools.simulator import (
    BAD_KINDS,
    CLASSES,
    SimulatedAlert,
    SimulationConfig,
    bad_packets,
    simulate_night,
)
from services.tools.simulator import packets as ztf_packets
from tests.samples import ROOT as SAMPLES

REAL_V4 = SAMPLES / "ztf/ztf_20250302_programid1_ZTF17aaarzyp_2982177112815010003.v4_02.avro"
needs_samples = pytest.mark.skipif(not REAL_V4.is_file(), reason=f"no real sample at {REAL_V4}")
CUTOUTS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
CONFIG = SimulationConfig(class_mix=dict.fromkeys(CLASSES, 1.0))  # every class, often
NIGHTS = (1, 2)


@pytest.fixture(scope="module")
def simulated() -> list[SimulatedAlert]:
    return [
        alert
        for night in NIGHTS
        for alert in simulate_night(CONFIG, night, 60, np.random.default_rng([17, night]))
    ]


def test_every_simulated_packet_decodes_to_its_alert(simulated: list[SimulatedAlert]) -> None:
    assert {alert.label for alert in simulated} == set(CLASSES)
    for alert in simulated:
        results = decode_message(alert.packet)
        assert len(results) == 1
        (decoded,) = results
        assert isinstance(decoded, Alert), (alert.label, decoded)
        assert decoded.alert_id == alert.alert_id
        assert decoded.object_id == alert.object_id
        assert (decoded.survey, decoded.schema_version) == ("ztf", "4.02")
        assert [c.shape for c in decoded.cutouts] == [(63, 63)] * 3
        for k in range(3):  # the packet carries exactly the simulated pixels
            assert np.array_equal(decoded.cutouts[k], alert.stamps[k])


def test_fast_fits_path_matches_astropy_on_simulated_stamps(
    simulated: list[SimulatedAlert],
) -> None:
    for alert in simulated[::3]:
        (decoded,) = decode_message(alert.packet)
        assert isinstance(decoded, Alert)
        for stamp in decoded.cutout_bytes:
            fast = decode_stamp(stamp, fallback=False)  # must not need astropy
            reference = decode_stamp_astropy(stamp)
            assert fast.dtype == reference.dtype == np.float32
            assert np.array_equal(fast, reference)


def test_fastavro_reads_them_with_the_committed_ztf_schema(
    simulated: list[SimulatedAlert],
) -> None:
    committed = json.loads(ztf_packets.SCHEMA_PATH.read_text())
    assert committed["version"] == "4.02" and committed["name"] == "alert"
    candids = set()
    for alert in simulated:
        reader = fastavro.reader(io.BytesIO(alert.packet))
        assert reader.codec == "null"
        assert json.loads(reader.metadata["avro.schema"]) == committed
        record = _only_record(alert.packet)
        assert set(record) == {field["name"] for field in committed["fields"]}
        candidate = record["candidate"]
        assert str(record["candid"]) == alert.alert_id == str(candidate["candid"])
        candids.add(record["candid"])
        assert re.fullmatch(r"ZTF26[a-z]{7}", record["objectId"])
        assert record["schemavsn"] == "4.02"
        night_start = CONFIG.start_jd + alert.night - 1
        assert night_start < candidate["jd"] < night_start + 0.5
        assert candidate["fid"] in (1, 2, 3)
        assert candidate["isdiffpos"] in ("t", "f")
        assert 11.0 <= candidate["magpsf"] <= 23.0 and 0 < candidate["sigmapsf"] < 0.4
        assert 0 <= candidate["ra"] < 360 and -90 < candidate["dec"] < 90
        assert 1.0 <= candidate["fwhm"] <= 5.0
        assert str(candidate["pid"]) in record["cutoutScience"]["fileName"]
        history = record["prv_candidates"]
        assert history is None or 1 <= len(history) <= CONFIG.max_history
        for previous in history or []:
            assert previous["jd"] < candidate["jd"] and previous["candid"] is None
        for name in CUTOUTS:
            cutout = record[name]
            assert cutout["fileName"].startswith(f"candid{record['candid']}")
            assert cutout["stampData"][:2] == b"\x1f\x8b"  # gzip, as ZTF ships them
    assert len(candids) == len(simulated)


def test_bad_packets_are_rejected_with_their_reasons() -> None:
    seen = set()
    for night in NIGHTS:
        for bad in bad_packets(
            CONFIG, night, 5, np.random.default_rng([17, night, 1]), first_index=60
        ):
            (result,) = decode_message(bad.packet)
            assert isinstance(result, Rejected), bad.kind
            assert result.reason == bad.reason == BAD_KINDS[bad.kind]
            assert result.alert_id == bad.alert_id
            seen.add(bad.kind)
    assert seen == set(BAD_KINDS)


@needs_samples
def test_container_header_is_the_real_ztf_header(simulated: list[SimulatedAlert]) -> None:
    """Everything before the sync marker is byte-identical to a real ZTF 4.02 alert."""
    real = REAL_V4.read_bytes()
    real_schema = fastavro.reader(io.BytesIO(real)).metadata["avro.schema"].encode()
    header_end = real.index(real_schema) + len(real_schema) + 1  # + the map's end marker
    ours = simulated[0].packet
    assert ours[:header_end] == real[:header_end]
    assert ztf_packets.schema_text() == real_schema
    real_writer = fastavro.reader(io.BytesIO(real)).writer_schema
    assert fastavro.reader(io.BytesIO(ours)).writer_schema == real_writer


@needs_samples
def test_stamps_are_encoded_like_real_ztf_stamps(simulated: list[SimulatedAlert]) -> None:
    """Same gzip member layout and the very same FITS header block as a real ZTF stamp."""
    real_record = _only_record(REAL_V4.read_bytes())
    ours = _only_record(simulated[0].packet)
    for name in CUTOUTS:
        real_stamp = real_record[name]["stampData"]
        our_stamp = ours[name]["stampData"]
        assert our_stamp[:4] == real_stamp[:4]  # gzip magic, deflate, no optional fields
        assert our_stamp[9] == real_stamp[9]  # OS byte
        real_fits, our_fits = gzip.decompress(real_stamp), gzip.decompress(our_stamp)
        assert len(our_fits) == len(real_fits) == 2880 + 17280
        assert our_fits[:2880] == real_fits[:2880]
        assert set(real_fits[2880 + 63 * 63 * 4 :]) == set(our_fits[2880 + 63 * 63 * 4 :]) == {0}


def test_simulator_needs_no_shared_checkout() -> None:
    """The schema travels with the repository; ../shared is only for the tests above."""
    repo = Path(__file__).resolve().parents[2]
    assert ztf_packets.SCHEMA_PATH.is_relative_to(repo / "schemas")
    assert "shared" not in ztf_packets.SCHEMA_PATH.relative_to(repo).parts


def _only_record(packet: bytes) -> dict[str, Any]:
    (record,) = list(fastavro.reader(io.BytesIO(packet)))
    assert isinstance(record, dict)
    return record
