"""``ahunt replay``: publish alert files to Kafka, one alert per message as surveys do."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from services.common.kafka import Delivery, OutMessage, ensure_topics, producer
from services.common.replay import messages_from_files
from services.common.settings import KafkaSettings
from services.common.topics import ALERTS


def bootstrap_servers(settings: KafkaSettings) -> str:
    if not settings.bootstrap_servers:
        raise SystemExit("set KAFKA_BOOTSTRAP_SERVERS (e.g. the address `ahunt kafka` prints)")
    return settings.bootstrap_servers


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", type=Path, help="alert files or folders of *.avro")
    p.add_argument("--topic", default=ALERTS)
    p.add_argument("--rate", type=float, default=0.0, help="messages per second (0: max)")
    p.add_argument("--loop", type=int, default=1, help="replay the files this many times")
    p.add_argument(
        "--no-split",
        action="store_true",
        help="send multi-record containers as one message (default: one per alert)",
    )


def main(a: argparse.Namespace) -> int:
    settings = KafkaSettings()
    bootstrap = bootstrap_servers(settings)
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
