"""Client tools: ``ahunt replay`` publishes alert files to Kafka, ``ahunt subscribe`` reads a
user's topic."""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from services.common import schemas
from services.common.kafka import Delivery, OutMessage, consumer, ensure_topics, producer
from services.common.png import triplet_png
from services.common.replay import messages_from_files
from services.common.settings import KafkaSettings
from services.common.users import user_topic


def _bootstrap(settings: KafkaSettings) -> str:
    if not settings.bootstrap_servers:
        raise SystemExit("set KAFKA_BOOTSTRAP_SERVERS (e.g. the address `ahunt kafka` prints)")
    return settings.bootstrap_servers


def add_replay_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", type=Path, help="alert files or folders of *.avro")
    p.add_argument("--topic", default="ahunt.alerts")
    p.add_argument("--rate", type=float, default=0.0, help="messages per second (0: max)")
    p.add_argument("--loop", type=int, default=1, help="replay the files this many times")
    p.add_argument(
        "--no-split",
        action="store_true",
        help="send multi-record containers as one message (default: one per alert)",
    )


def replay(a: argparse.Namespace) -> int:
    settings = KafkaSettings()
    bootstrap = _bootstrap(settings)
    files = sorted(f for p in a.paths for f in ([p] if p.is_file() else p.rglob("*.avro")))
    payloads = list(messages_from_files(files, split=not a.no_split))
    if not payloads:
        raise SystemExit("no alert files found")
    ensure_topics(settings, bootstrap, [a.topic])
    delivery = Delivery(producer(settings, bootstrap, **{"message.max.bytes": 10_000_000}))
    started = time.perf_counter()
    sent = 0
    chunk = max(1, int(a.rate // 10)) if a.rate > 0 else 500
    for _ in range(a.loop):
        for start in range(0, len(payloads), chunk):
            batch = payloads[start : start + chunk]
            delivery.send([OutMessage(a.topic, v) for v in batch])
            sent += len(batch)
            if a.rate > 0:  # pace to the requested rate
                ahead = sent / a.rate - (time.perf_counter() - started)
                if ahead > 0:
                    time.sleep(ahead)
    elapsed = time.perf_counter() - started
    print(
        f"{sent} messages from {len(files)} files to {a.topic} in {elapsed:.1f} s "
        f"({sent / max(elapsed, 1e-9):.0f}/s)"
    )
    return 0


def add_subscribe_arguments(p: argparse.ArgumentParser) -> None:
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


def subscribe(a: argparse.Namespace) -> int:
    settings = KafkaSettings()
    bootstrap = _bootstrap(settings)
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
