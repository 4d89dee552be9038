"""``ahunt subscribe``: read a user's alert topic (a table, JSON lines, or PNG cutouts)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from services.common import schemas
from services.common.kafka import consumer
from services.common.png import triplet_png
from services.common.settings import KafkaSettings
from services.common.topics import user_topic
from services.tools.replay import bootstrap_servers


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user", required=True)
    p.add_argument(
        "--from-beginning",
        action="store_true",
        help="read the topic's history (default: only new alerts)",
    )
    p.add_argument("--max", type=int, default=0, help="stop after N alerts (0: never)")
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=0.0,
        help="stop after this many seconds without a new alert (0: never)",
    )
    p.add_argument("--json", action="store_true", help="one JSON line per alert")
    p.add_argument(
        "--save-png", type=Path, default=None, help="write <alert_id>.png cutout triplets here"
    )


def _row(r: dict[str, Any]) -> str:
    probs = sorted(r["class_probabilities"].items(), key=lambda kv: -kv[1])[:2]
    top = " ".join(f"{c}={p:.2f}" for c, p in probs)
    return (
        f"{r['alert_id']:>20}  {r['object_id']:<14} {r['survey']:<5} {r['score']:.3f}  "
        f"{r['reason']:<9} {r['model_version']:<12} {top}"
    )


def main(a: argparse.Namespace) -> int:
    settings = KafkaSettings()
    bootstrap = bootstrap_servers(settings)
    topic = user_topic(a.user)
    group = (
        f"ahunt-subscribe-{a.user}-{uuid.uuid4().hex[:6]}"
        if a.from_beginning
        else f"ahunt-subscribe-{a.user}"
    )
    c = consumer(
        settings,
        bootstrap,
        group,
        **{
            "auto.offset.reset": "earliest" if a.from_beginning else "latest",
            "enable.auto.commit": True,
        },
    )
    c.subscribe([topic])
    if a.save_png:
        a.save_png.mkdir(parents=True, exist_ok=True)
    if not a.json:
        print(
            f"{'alert_id':>20}  {'object_id':<14} {'srv':<5} {'score':<6} {'reason':<9} "
            f"{'model':<12} top classes",
            flush=True,
        )
    seen, last = 0, time.monotonic()
    try:
        while not a.max or seen < a.max:
            if a.idle_timeout and time.monotonic() - last > a.idle_timeout:
                break
            for m in c.consume(100, 0.5):
                # A viewer, not a processing loop (it commits nothing itself): it waits through
                # errors such as "unknown topic" (a user's topic appears with their first alert).
                if m.error() is not None:
                    continue
                r = schemas.decode(schemas.USER_ALERT, m.value() or b"")
                seen += 1
                last = time.monotonic()
                if a.json:
                    print(
                        json.dumps(
                            {k: v for k, v in r.items() if not k.startswith("cutout_")}, default=str
                        ),
                        flush=True,
                    )
                else:
                    print(_row(r), flush=True)
                if a.save_png:
                    _save_png(a.save_png, r)
                if a.max and seen >= a.max:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        c.close()
    print(f"{seen} alerts", file=sys.stderr)
    return 0


def _save_png(folder: Path, record: dict[str, Any]) -> None:
    from services.common.cutouts import CutoutError, decode_stamp

    try:
        stamps = [
            decode_stamp(record[k])
            for k in ("cutout_science", "cutout_template", "cutout_difference")
        ]
    except CutoutError:
        return
    (folder / f"{record['alert_id']}.png").write_bytes(triplet_png(stamps))
