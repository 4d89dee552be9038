"""``ahunt demo --alerts DIR --labels FILE``: the demo's stream from real alert packets.

Any directory of Avro alert packets (ZTF's own, an archive's, a broker's parts) and a labels
file: every packet is decoded, the alerts are put in the order of their own observation time
(never of file names), the first part bootstraps version 1 unlabelled, and the rest is cut into
K nights of equal counts that two simulated users answer from the labels file.

The scorer's budgets are per observing night on the alerts' own clock, and an archive's K demo
nights are rarely K observing nights (a sample of one night, or years apart). So each replayed
packet is re-dated: demo night k is an observing night, its alerts spread in their own order over
six hours of it. Only the observation time changes; ids, pixels and every other field are the
packet's own, written back with its own writer schema.
"""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import fastavro
import numpy as np

from services.common.alerts import Alert, decode_message
from services.common.decoding.layout import locate
from services.common.replay import messages_from_files
from services.tools.demo.users import DemoUser

# ZTF's alert ids are candids; both spellings of each column are accepted.
ID_COLUMNS = ("candid", "alert_id")
OBJECT_COLUMNS = ("objectId", "object_id")
LABEL_COLUMNS = ("label", "class")
NIGHT_HOURS = 6.0  # a demo night's alerts are spread over this much of its observing night
_JD_MJD = 2_400_000.5

REAL_USERS = (
    # Hunts asteroids and says "not interesting" of bogus detections, the striking kind they do
    # not want; labels the rest with no opinion (issue 12: "dismisses bogus").
    DemoUser("carol", ("known_sso",), ("bogus",), others_boring=False),
    # Cleans the stream: hunts bogus detections, no opinion on the rest.
    DemoUser("dave", ("bogus",), (), others_boring=False),
)


@dataclass(frozen=True)
class Labels:
    """A labels file: label per alert id, and per object id where the file has one label for
    every alert of that object (an object's alerts can differ: an asteroid is not a star)."""

    by_alert: dict[str, str]
    by_object: dict[str, str]
    origin: str  # how the labels were made, as the demo prints it

    def of(self, alert: Alert) -> str | None:
        return self.by_alert.get(alert.alert_id) or self.by_object.get(alert.object_id)


def _column(header: Sequence[str], names: Iterable[str]) -> str | None:
    return next((n for n in names if n in header), None)


def read_labels(path: Path) -> Labels:
    """Read a CSV with a label column (``label`` or ``class``) and an alert id column
    (``candid`` or ``alert_id``) and/or an object id column (``objectId`` or ``object_id``).
    ValueError naming what is missing when it has neither."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    label_col = _column(header, LABEL_COLUMNS)
    id_col, object_col = _column(header, ID_COLUMNS), _column(header, OBJECT_COLUMNS)
    if label_col is None or (id_col is None and object_col is None):
        raise ValueError(
            f"{path}: a labels file needs a column {' or '.join(LABEL_COLUMNS)} and a column "
            f"{' or '.join(ID_COLUMNS + OBJECT_COLUMNS)}; its header is {header}"
        )
    by_alert: dict[str, str] = {}
    per_object: dict[str, set[str]] = {}
    for row in rows:
        label = (row.get(label_col) or "").strip()
        if not label:
            continue
        if id_col and (alert_id := (row.get(id_col) or "").strip()):
            by_alert[alert_id] = label
        if object_col and (object_id := (row.get(object_col) or "").strip()):
            per_object.setdefault(object_id, set()).add(label)
    by_object = {o: next(iter(ls)) for o, ls in per_object.items() if len(ls) == 1}
    return Labels(by_alert, by_object, _origin(path, header, rows))


def _origin(path: Path, header: Sequence[str], rows: list[dict[str, str]]) -> str:
    if "rule" not in header:
        return f"labels from {path} (as that file made them)"
    rules = Counter(row["rule"] for row in rows if row.get("rule"))
    listed = ", ".join(f"{rule} {n}" for rule, n in rules.most_common())
    return (
        f"weak labels from {path}, computed from the survey pipeline's own fields in each alert "
        f"(not human vetting); rules: {listed}"
    )


@dataclass(frozen=True)
class Packet:
    """One replayable message: its bytes and what it decodes to."""

    message: bytes
    alert: Alert


def read_packets(directory: Path) -> list[Packet]:
    """Every alert under ``directory`` (recursively, any file name), one message per record,
    in time order (ties by id); messages that do not decode to an alert are left out."""
    paths = sorted(p for p in directory.rglob("*.avro") if p.is_file())
    packets = []
    for message in messages_from_files(paths):
        decoded = [r for r in decode_message(message) if isinstance(r, Alert)]
        if len(decoded) == 1:
            packets.append(Packet(message, decoded[0]))
    packets.sort(key=lambda p: (p.alert.observed_mjd, p.alert.alert_id))
    return packets


def redate(message: bytes, mjd: float) -> bytes:
    """The packet with its observation time set to ``mjd`` (in the unit its survey writes: JD
    for ZTF, MJD for Rubin), everything else as written; re-encoded with its own schema."""
    reader = fastavro.reader(io.BytesIO(message))
    schema = reader.writer_schema
    records = list(reader)
    located = locate(schema)
    if len(records) != 1 or not located.paths.get("time"):
        raise ValueError("only a one-record packet with an observation time can be re-dated")
    record = records[0]
    value = mjd + _JD_MJD if located.survey == "ztf" else mjd
    for path in located.paths["time"]:
        node = record
        for name in path[:-1]:
            node = node.get(name) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get(path[-1]) is not None:
            node[path[-1]] = value
    out = io.BytesIO()
    fastavro.writer(out, schema, [record], codec=reader.codec)
    return out.getvalue()


def _date(mjd: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime((mjd - 40587.0) * 86_400.0))


class RealStream:
    """The demo's stream from real packets (module docstring): the bootstrap pool, K nights of
    re-dated messages, the oracle's truth and each user's share of the stream."""

    def __init__(
        self,
        alerts_dir: Path,
        labels_path: Path,
        nights: int,
        bootstrap_share: float = 0.3,
        users: Sequence[DemoUser] = REAL_USERS,
    ) -> None:
        self.users = tuple(users)
        self.labels = read_labels(labels_path)
        packets = read_packets(alerts_dir)
        if len(packets) < 2 * nights + 2:
            raise ValueError(
                f"{alerts_dir}: {len(packets)} decodable alert packets, too few for {nights} nights"
            )
        cut = max(1, int(round(bootstrap_share * len(packets))))
        self.pool = [p.alert for p in packets[:cut]]
        split = np.array_split(np.arange(cut, len(packets)), nights)
        self.nights = {k + 1: [packets[int(i)] for i in idx] for k, idx in enumerate(split)}
        labelled = sum(self.labels.of(p.alert) is not None for p in packets[cut:])
        if labelled == 0:
            raise ValueError(f"{labels_path}: no label matches any replayed alert's id or object")
        self.truth: dict[str, dict[str, str]] = {}
        for night, night_packets in self.nights.items():
            for p in night_packets:
                label = self.labels.of(p.alert) or ""
                self.truth[p.alert.alert_id] = {"class": label, "night": str(night)}
        replayed = [row["class"] for row in self.truth.values()]
        self.stream_share = {
            u.name: sum(c in u.interesting for c in replayed) / len(replayed) for u in self.users
        }
        # Tonight's date, as the simulator's nights: the budget clock must not run backwards.
        self.start_mjd = float(np.floor(time.time() / 86_400.0 + 40587.0))
        self.unlabelled = len(self.truth) - labelled
        self.span = (packets[0].alert.observed_mjd, packets[-1].alert.observed_mjd)

    def describe(self) -> str:
        """What was read, as the demo prints it."""
        first, last = (_date(t) for t in self.span)
        sizes = [len(v) for v in self.nights.values()]
        unlabelled = f", {self.unlabelled} without a label" if self.unlabelled else ""
        return (
            f"  {len(self.pool) + sum(sizes)} real alerts observed {first} to {last}, in time "
            f"order: the first {len(self.pool)} bootstrap v1 unlabelled, then {len(sizes)} "
            f"nights of {min(sizes)}-{max(sizes)} alerts{unlabelled}, each re-dated onto a night "
            "of its own (budgets are per observing night)"
        )

    @property
    def origin(self) -> str:
        return self.labels.origin

    def bootstrap_alerts(self) -> list[Alert]:
        return list(self.pool)

    def night_messages(self, night: int) -> tuple[list[bytes], int, int]:
        """The night's packets re-dated onto demo night ``night`` (module docstring), their
        number and that of broken packets (none: an archive's are its own)."""
        packets = self.nights[night]
        start = self.start_mjd + night + 0.125  # 03:00 UT, a Palomar evening
        step = NIGHT_HOURS / 24.0 / max(1, len(packets))
        messages = [redate(p.message, start + i * step) for i, p in enumerate(packets)]
        return messages, len(messages), 0

    def night_alerts(self, night: int) -> list[Alert]:
        return [p.alert for p in self.nights[night]]

    def per_night(self) -> int:
        return max(len(v) for v in self.nights.values())
