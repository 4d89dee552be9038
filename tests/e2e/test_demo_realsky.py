"""``ahunt demo --alerts DIR --labels FILE`` end to end on a small real subset: real ZTF packets
(renamed, so their names say nothing of their time) replayed through the real broker, scorer,
feedback API and retrain as two nights, the users answering from a labels file.

What it checks is what the short run can show: every night is replayed and scored, the users'
answers and shares come from the labels file, the labels' origin is said, and the re-dated
packets all decode. How well the users are served is measured by the full run
(docs/BENCHMARKS.md, "Live demo on real ZTF alerts"), not here.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("torch")

pytestmark = pytest.mark.timeout(600)

from services.tools.demo.realsky import REAL_USERS, read_packets  # noqa: E402
from services.tools.demo.report import DemoResult  # noqa: E402
from services.tools.demo.run import run_demo  # noqa: E402
from tests.samples import ROOT, needs_samples  # noqa: E402

REAL = ROOT / "ztf-real"
SUBSET = 72  # packets: 22 bootstrap v1, then two nights of 25
NIGHTS = 2


@pytest.fixture(scope="module")
def subset(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, dict[str, str], list[str]]:
    """A spread of the real packets under names in reverse time order, and a labels file keyed by
    ``alert_id`` (the other spelling of candid) with the shared labels; returns the folder, the
    labels file, the labels and the alert ids in time order."""
    if not REAL.is_dir():
        pytest.skip(f"real ZTF packets not found at {REAL}")
    packets = read_packets(REAL)
    chosen = packets[:: len(packets) // SUBSET][:SUBSET]
    folder = tmp_path_factory.mktemp("archive")
    for i, p in enumerate(chosen):
        (folder / f"{SUBSET - i:03d}.avro").write_bytes(p.message)
    with open(REAL / "labels.csv", newline="") as f:
        shared = {row["candid"]: row["label"] for row in csv.DictReader(f)}
    ids = [p.alert.alert_id for p in chosen]
    labels = {a: shared[a] for a in ids}
    path = folder.parent / "subset-labels.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["alert_id", "label", "rule"])
        writer.writerows([a, labels[a], "from the shared labels.csv"] for a in ids)
    return folder, path, labels, ids


@pytest.fixture(scope="module")
def demo(
    subset: tuple[Path, Path, dict[str, str], list[str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[DemoResult, list[str]]:
    folder, labels, _, _ = subset
    lines: list[str] = []

    def progress(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    result = run_demo(
        tmp_path_factory.mktemp("realsky") / "out",
        nights=NIGHTS,
        budget=5,
        seed=0,
        retrain_epochs=1,
        alerts=folder,
        labels=labels,
        progress=progress,
    )
    return result, lines


@needs_samples
def test_every_night_is_replayed_scored_and_labelled_from_the_labels_file(
    demo: tuple[DemoResult, list[str]], subset: tuple[Path, Path, dict[str, str], list[str]]
) -> None:
    result, _ = demo
    _, _, labels, ids = subset
    replayed = ids[round(0.3 * SUBSET) :]  # the first 30% in time order bootstrap v1
    assert [r.night for r in result.rows] == list(range(1, NIGHTS + 1))
    assert sum(r.alerts for r in result.rows) == len(replayed)
    assert all(r.scored >= r.alerts for r in result.rows)
    assert result.dead_letters == []  # every re-dated packet decoded
    for user in REAL_USERS:
        share = sum(labels[a] in user.interesting for a in replayed) / len(replayed)
        assert result.stream_share[user.name] == pytest.approx(share)
        got = result.deliveries[user.name]
        assert sum(r.delivered[user.name] for r in result.rows) == len(got) > 0
        for delivery in got:  # what each user answered is the file's label, night by night
            assert delivery["true_class"] == labels[delivery["alert_id"]]
            assert delivery["alert_id"] in replayed and delivery["labelled"]
        per_night = Counter(d["night"] for d in got)
        for row in result.rows:
            assert per_night[row.night] == row.delivered[user.name]
            hunted = sum(
                d["true_class"] in user.interesting for d in got if d["night"] == row.night
            )
            assert row.interesting_share[user.name] == pytest.approx(
                hunted / max(1, row.delivered[user.name])
            )


@needs_samples
def test_the_labels_origin_and_every_nights_row_are_printed(
    demo: tuple[DemoResult, list[str]],
) -> None:
    result, lines = demo
    said = "\n".join(lines)
    assert "the users answer from" in said and "subset-labels.csv" in said
    assert "rules: from the shared labels.csv" in said and "not human vetting" in said
    assert "not human vetting" in result.labels_origin
    printed = said.splitlines()
    rows = [line.split()[0] for line in printed if " | " in line and line.strip()[:1].isdigit()]
    assert rows == [str(n) for n in range(1, NIGHTS + 1)]
    for user in REAL_USERS:
        png = Path(result.out) / f"discovery-{user.name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png


@needs_samples
def test_the_in_process_retrains_log_to_a_file_not_between_the_rows(
    demo: tuple[DemoResult, list[str]],
) -> None:
    """Each night's retrain runs in the demo's process: its lines (a rejection's full reason)
    are in logs/retrain.log, and the logger is as it was after the run."""
    result, _ = demo
    log = (Path(result.out) / "logs" / "retrain.log").read_text()
    assert "gate for ztf-0002" in log
    assert logging.getLogger("ahunt.retrain").propagate
