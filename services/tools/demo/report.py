"""What a demo run reports: a row per night, the whole result (``demo.json``), the table the
command prints, and per user a discovery curve and a gallery of top alerts."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis

from services.common import keys
from services.common.values import data
from services.tools.demo.oracle import Oracle
from services.tools.demo.users import USERS, DemoUser

log = logging.getLogger("ahunt.demo")


@dataclass
class NightRow:
    night: int
    alerts: int
    scored: int
    model_version: str  # the version live while the night was scored
    delivered: dict[str, int] = field(default_factory=dict)
    interesting_share: dict[str, float] = field(default_factory=dict)
    # the same share among the deliveries the model chose as top picks (not exploration)
    top_share: dict[str, float] = field(default_factory=dict)
    boring_delivered: dict[str, int] = field(default_factory=dict)
    baseline_share: dict[str, float] = field(default_factory=dict)
    # the share of the user's classes among tonight's alerts (a real night's mix varies a lot)
    stream_share: dict[str, float] = field(default_factory=dict)
    retrain: str = ""


@dataclass
class DemoResult:
    rows: list[NightRow]
    stream_share: dict[str, float]  # share of each user's interesting class in the stream
    versions_published: list[str]
    versions_seen: dict[str, list[str]]
    dead_letters: list[dict[str, Any]]
    bad_packets: int
    deliveries: dict[str, list[dict[str, Any]]]  # per user: what arrived, its class and reason
    seconds: float
    out: Path
    users: list[DemoUser] = field(default_factory=list)  # who hunted what
    labels_origin: str = ""  # where the users' answers came from

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["out"] = str(self.out)
        return data


def format_row(row: NightRow, header: bool, users: Sequence[DemoUser] = USERS) -> str:
    names = [u.name for u in users]
    lines = []
    if header:
        cols = "".join(f" | {n}: got  liked  (top)  boring  (iforest)" for n in names)
        lines.append(f"night  alerts  scored  model    {cols} | retrain")
    cells = "".join(
        f" |    {row.delivered[n]:>5}  {row.interesting_share[n]:>5.0%}  ({row.top_share[n]:>4.0%})"
        f"  {row.boring_delivered[n]:>6}  ({row.baseline_share[n]:>4.0%}) "
        for n in names
    )
    lines.append(
        f"{row.night:>5}  {row.alerts:>6}  {row.scored:>6}  {row.model_version:<8}{cells}"
        f" | {row.retrain}"
    )
    return "\n".join(lines)


def write_figures(
    out: Path,
    oracles: dict[str, Oracle],
    rows: list[NightRow],
    client: redis.Redis,
    users: Sequence[DemoUser] = USERS,
) -> None:
    """Discovery curves and galleries (matplotlib from the bench extra; skipped without it)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib not installed: no figures")
        return
    from services.common.cutouts import decode_stamp

    for u in users:
        received = [r for r in oracles[u.name].received if r.night is not None]
        hits = np.cumsum([r.true_class in u.interesting for r in received])
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(np.arange(1, len(hits) + 1), hits, label="AHUNT (this run)", lw=2)
        base_hits: list[float] = []
        acc = 0.0
        for row in rows:
            per = row.delivered[u.name] or 0
            for _ in range(per):
                acc += row.baseline_share[u.name]
                base_hits.append(acc)
        ax.plot(
            np.arange(1, len(base_hits) + 1), base_hits, label="isolation forest on pixels", ls="--"
        )
        ax.set_xlabel("alerts delivered")
        ax.set_ylabel(f"interesting found ({', '.join(u.interesting)})")
        ax.set_title(f"{u.name}: cumulative discoveries")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / f"discovery-{u.name}.png", dpi=110)
        plt.close(fig)

        top = sorted(received, key=lambda r: -r.score)[:8]
        if not top:
            continue
        fig, axes = plt.subplots(len(top), 3, figsize=(4.5, 1.6 * len(top)), squeeze=False)
        for i, r in enumerate(top):
            cached = client.hmget(
                keys.alert_key(r.alert_id),
                ["cutout_science", "cutout_template", "cutout_difference"],
            )
            for j, raw in enumerate(cached):
                ax = axes[i][j]
                ax.set_axis_off()
                if raw:
                    image = decode_stamp(data(raw))
                    lo, hi = np.nanpercentile(image, [1, 99.5])
                    ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, origin="lower")
            axes[i][0].set_title(f"{r.true_class} {r.score:.2f}", fontsize=7, loc="left")
        fig.suptitle(f"{u.name}: top alerts", fontsize=9)
        fig.tight_layout()
        fig.savefig(out / f"gallery-{u.name}.png", dpi=100)
        plt.close(fig)
