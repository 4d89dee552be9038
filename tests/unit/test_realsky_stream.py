"""The real-sky demo's stream (services/tools/demo/realsky.py): labels files with either key,
packets in the order of their own time whatever their names, re-dating that changes nothing but
the time, and the bounded real samples the simulated demo mixes in."""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

import pytest

from services.common.alerts import Alert, decode_message
from services.tools.demo.realsky import Packet, RealStream, read_labels, read_packets, redate
from services.tools.demo.run import sample_messages
from tests.samples import ROOT, needs_samples

REAL = ROOT / "ztf-real"


@cache
def real_packets() -> list[Packet]:
    """The shared real packets, decoded once for the module (each test copies what it needs)."""
    return read_packets(REAL)


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_labels_by_candid_or_alert_id_and_by_object(tmp_path: Path) -> None:
    by_candid = read_labels(write_csv(tmp_path / "a.csv", ["candid", "label"], [["1", "bogus"]]))
    assert by_candid.by_alert == {"1": "bogus"} and by_candid.by_object == {}
    other = read_labels(
        write_csv(
            tmp_path / "b.csv",
            ["alert_id", "object_id", "class"],
            [["1", "ZTF1", "known_sso"], ["2", "ZTF2", "bogus"], ["3", "ZTF2", "real_other"]],
        )
    )
    assert other.by_alert == {"1": "known_sso", "2": "bogus", "3": "real_other"}
    # An object whose alerts carry different labels gives no label by object.
    assert other.by_object == {"ZTF1": "known_sso"}
    only_objects = read_labels(
        write_csv(tmp_path / "c.csv", ["objectId", "label"], [["ZTF9", "star_variable"]])
    )
    assert only_objects.by_object == {"ZTF9": "star_variable"}
    assert "as that file made them" in only_objects.origin


@pytest.mark.parametrize("header", [["candid", "objectId"], ["file", "label"], ["label"]], ids=str)
def test_a_labels_file_without_a_label_or_an_id_column_is_refused(
    tmp_path: Path, header: list[str]
) -> None:
    path = write_csv(tmp_path / "bad.csv", header, [["x"] * len(header)])
    with pytest.raises(ValueError, match="a labels file needs a column label or class"):
        read_labels(path)


@needs_samples
def test_the_shared_labels_say_they_are_weak_labels() -> None:
    labels = read_labels(REAL / "labels.csv")
    assert "not human vetting" in labels.origin and "drb<0.1" in labels.origin


def copy_renamed(tmp_path: Path, count: int) -> tuple[Path, list[str]]:
    """``count`` real packets under names whose order is the reverse of their time order, in
    nested folders; returns the folder and the alert ids in time order."""
    packets = real_packets()
    step = max(1, len(packets) // count)
    chosen = packets[::step][:count]
    folder = tmp_path / "archive"
    for i, p in enumerate(chosen):
        target = folder / f"sub{i % 2}" / f"{count - i:04d}-x.avro"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(p.message)
    return folder, [p.alert.alert_id for p in chosen]


@needs_samples
def test_packets_come_in_the_order_of_their_own_time_not_of_their_names(tmp_path: Path) -> None:
    folder, in_time_order = copy_renamed(tmp_path, 12)
    by_name = [
        a.alert_id
        for path in sorted(folder.rglob("*.avro"))
        for a in decode_message(path.read_bytes())
        if isinstance(a, Alert)
    ]
    assert by_name != in_time_order  # the names alone would give another order
    assert [p.alert.alert_id for p in read_packets(folder)] == in_time_order


@needs_samples
def test_redating_changes_the_time_and_nothing_else() -> None:
    packet = real_packets()[0]
    (moved,) = [a for a in decode_message(redate(packet.message, 61000.25)) if isinstance(a, Alert)]
    before = packet.alert
    assert moved.observed_mjd == pytest.approx(61000.25, abs=1e-6)
    for name in ("alert_id", "object_id", "ra", "dec", "magnitude", "schema_version"):
        assert getattr(moved, name) == getattr(before, name), name
    assert moved.cutout_bytes == before.cutout_bytes


@needs_samples
def test_the_stream_bootstraps_on_the_earliest_and_cuts_the_rest_into_nights(
    tmp_path: Path,
) -> None:
    folder, in_time_order = copy_renamed(tmp_path, 30)
    labels = write_csv(
        tmp_path / "labels.csv",
        ["alert_id", "class"],
        [[a, "known_sso" if i % 3 == 0 else "real_other"] for i, a in enumerate(in_time_order)],
    )
    stream = RealStream(folder, labels, nights=3, bootstrap_share=0.2)
    assert [a.alert_id for a in stream.pool] == in_time_order[:6]
    replayed = [p.alert.alert_id for n in (1, 2, 3) for p in stream.nights[n]]
    assert replayed == in_time_order[6:] and [len(stream.nights[n]) for n in (1, 2, 3)] == [8] * 3
    hunted = sum(i % 3 == 0 for i in range(6, 30)) / 24
    assert stream.stream_share == {"carol": pytest.approx(hunted), "dave": 0.0}
    assert {stream.truth[a]["night"] for a in replayed[:8]} == {"1"}
    messages, count, bad = stream.night_messages(2)
    times = [a.observed_mjd for m in messages for a in decode_message(m) if isinstance(a, Alert)]
    assert count == len(times) == 8 and bad == 0 and times == sorted(times)
    assert times[-1] - times[0] < 0.3 and times[0] > stream.start_mjd + 2  # a night of its own


@needs_samples
def test_labels_that_match_no_replayed_alert_are_refused(tmp_path: Path) -> None:
    folder, _ = copy_renamed(tmp_path, 12)
    labels = write_csv(tmp_path / "other.csv", ["candid", "label"], [["123", "bogus"]])
    with pytest.raises(ValueError, match="no label matches any replayed alert"):
        RealStream(folder, labels, nights=2)


@needs_samples
def test_the_simulated_demo_mixes_in_at_most_the_bound_of_real_packets(tmp_path: Path) -> None:
    folder, in_time_order = copy_renamed(tmp_path, 40)
    rubin = folder / "ztf-looking-name" / "rubin.avro"  # Rubin, whatever the folder: left out
    rubin.parent.mkdir()
    rubin.write_bytes(next((ROOT / "rubin").glob("*.avro")).read_bytes())
    everything = sample_messages(folder, limit=1000)
    ids = [a.alert_id for m in everything for a in decode_message(m) if isinstance(a, Alert)]
    assert sorted(ids) == sorted(in_time_order)  # every ZTF packet, no Rubin one
    bounded = sample_messages(folder, limit=15)
    assert len(bounded) == 15 and bounded == sample_messages(folder, limit=15)
    assert bounded[0] == everything[0] and bounded[-1] == everything[-1]  # spread, not a head
