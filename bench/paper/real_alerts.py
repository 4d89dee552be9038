"""Real alert packets and a labels file as a benchmark dataset (``--dataset ztf-real``).

Every ``*.avro`` file under the folder (any name, any depth, any number of records) goes through
the product's own decoder (``services.common.alerts.decode_message``); an alert is kept when the
labels file names its id (the ZTF ``candid``). The network input is built from the decoded
alert's three cutouts only, with the product's own stamp preparation (``models.preprocess``):
the :class:`~services.common.alerts.Alert` carries ids, position, time, magnitude and the stamps,
none of the pipeline fields the weak labels are computed from (:data:`LABEL_FIELDS`), so they
cannot reach a model. The object id is kept beside the pixels only to split by object.
"""

from __future__ import annotations

import csv
import functools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.preprocess import InputSpec, Preprocessing, prepare
from services.common.alerts import Alert, decode_message

# The alert fields behind labels.csv (label_alerts.py beside the shared packets): asteroid
# distance and name, the deep and classic real/bogus scores, the star/galaxy score and the
# distance to the nearest Pan-STARRS source. The model must never see them.
LABEL_FIELDS = ("ssdistnr", "ssnamenr", "drb", "rb", "sgscore1", "distpsnr1")

# The shared packets, relative to the repository (a checkout beside ../shared, see README).
DEFAULT_ALERTS = Path(__file__).resolve().parents[2].parent / "shared/data/alerts/ztf-real"

_ID_COLUMNS = ("candid", "alert_id")
_CLASS_COLUMNS = ("label", "class")
# Not a class a user would name: the weak-label rules found nothing (label_alerts.py).
UNLABELLED = "unknown"

# The product's own preprocessing: it masks ZTF's fill values (-3.4e38) like NaN
# (models.preprocess.usable), so real stamps need no option of their own.
REAL_PREPROCESSING = Preprocessing(kind="robust")


@dataclass(frozen=True)
class RealAlerts:
    """The labelled alerts: ``x`` (N, C, H, W) prepared stamps, ``labels`` and ``objects`` (N,)."""

    x: np.ndarray
    labels: np.ndarray
    objects: np.ndarray
    alert_ids: tuple[str, ...]
    unlabelled_alerts: int  # decoded, but the labels file does not name them
    missing_alerts: int  # named by the labels file, but no packet holds them
    rejected: int  # records the decoder refused

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.labels.tolist())))

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.labels.tolist()).items()))


def read_labels(path: Path) -> dict[str, str]:
    """``alert id -> class`` from a CSV with a header naming an id column (``candid`` or
    ``alert_id``) and a class column (``label`` or ``class``); other columns are ignored."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        id_col = next((c for c in _ID_COLUMNS if c in header), None)
        class_col = next((c for c in _CLASS_COLUMNS if c in header), None)
        if id_col is None or class_col is None:
            raise ValueError(
                f"{path}: the header needs an id column ({' or '.join(_ID_COLUMNS)}) and a "
                f"class column ({' or '.join(_CLASS_COLUMNS)}); found {header}"
            )
        out: dict[str, str] = {}
        for line, row in enumerate(reader, start=2):
            alert_id, name = (row.get(id_col) or "").strip(), (row.get(class_col) or "").strip()
            if not alert_id or not name:
                raise ValueError(f"{path}:{line}: empty {id_col} or {class_col}")
            out[alert_id] = name
    if not out:
        raise ValueError(f"{path}: no labelled alerts")
    return out


def decode_folder(folder: Path) -> tuple[list[Alert], int]:
    """Every alert in the Avro files under ``folder`` (sorted paths: a deterministic order that
    nothing downstream relies on), and how many records were refused."""
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder of alert packets")
    alerts: list[Alert] = []
    rejected = 0
    for path in sorted(folder.rglob("*.avro")):
        for result in decode_message(path.read_bytes()):
            if isinstance(result, Alert):
                alerts.append(result)
            else:
                rejected += 1
    return alerts, rejected


def crop_centre(x: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` x ``size`` pixels of (N, C, H, W) stamps (all of them for 0).

    >>> crop_centre(np.arange(25.0).reshape(1, 1, 5, 5), 3)[0, 0, 0].tolist()
    [6.0, 7.0, 8.0]
    """
    h, w = x.shape[2:]
    if size <= 0 or size >= min(h, w):
        return x
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(x[:, :, top : top + size, left : left + size])


def stamps_to_input(
    cutouts: list[tuple[np.ndarray, ...]], crop: int, preprocessing: Preprocessing
) -> np.ndarray:
    """Decoded cutouts -> network input: the product's preparation at ZTF's 63x63, then the
    benchmark's central crop (the source is at the centre of every ZTF stamp)."""
    x = prepare(cutouts, InputSpec(3, 63, 63), preprocessing)
    return crop_centre(x, crop)


@functools.lru_cache(maxsize=4)
def load_real_alerts(
    alerts_dir: str, labels_file: str, crop: int, preprocessing: Preprocessing
) -> RealAlerts:
    """Decode, join with the labels by alert id and prepare; cached per process (every seed of
    a run reads the same packets)."""
    labels = read_labels(Path(labels_file))
    alerts, rejected = decode_folder(Path(alerts_dir))
    by_id: dict[str, Alert] = {}
    for alert in alerts:
        by_id.setdefault(alert.alert_id, alert)  # a packet repeated in two files counts once
    kept = [a for a in by_id.values() if a.alert_id in labels]
    if not kept:
        raise ValueError(
            f"none of the {len(by_id)} alerts decoded from {alerts_dir} is named in {labels_file}"
        )
    x = stamps_to_input([a.cutouts for a in kept], crop, preprocessing)
    x.setflags(write=False)
    return RealAlerts(
        x=x,
        labels=np.asarray([labels[a.alert_id] for a in kept]),
        objects=np.asarray([a.object_id or a.alert_id for a in kept]),
        alert_ids=tuple(a.alert_id for a in kept),
        unlabelled_alerts=len(by_id) - len(kept),
        missing_alerts=len(set(labels) - set(by_id)),
        rejected=rejected,
    )
