"""``ahunt dlq``: fetch the whole original of a dead letter.

An envelope on ``ahunt.dlq`` carries the original's sha256, size and first bytes
(``services.common.dead_letters``). ``ahunt dlq get SHA256`` fetches the whole original from
Redis, where the scorer keeps it (7 days by default, within a size cap); when it is not there
(too large, the store was full, expired), ``ahunt dlq get --source TOPIC:PARTITION:OFFSET``
reads it from the input topic while the topic's retention keeps it, and checks it against the
sha256 when one is given. Either way the bytes go to ``--out`` (or standard output), ready for
``ahunt decode`` or ``ahunt replay``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import TopicPartition

from services.common import store
from services.common.dead_letters import OriginalStore
from services.common.kafka import consumer
from services.common.settings import KafkaSettings, require_redis_url
from services.tools.replay import bootstrap_servers


def add_arguments(p: argparse.ArgumentParser) -> None:
    commands = p.add_subparsers(dest="dlq_command", required=True)
    get = commands.add_parser("get", help="the whole original of a dead letter")
    get.add_argument("sha256", nargs="?", help="original.sha256 of the envelope")
    get.add_argument(
        "--source",
        help="TOPIC:PARTITION:OFFSET (the envelope's source): read it from the input topic",
    )
    get.add_argument("--out", "-o", type=Path, help="write it here (default: standard output)")


def from_redis(url: str, sha256: str) -> bytes | None:
    client = store.connect(url)
    try:
        return OriginalStore(client, 60, 0, 0).fetch(sha256)
    finally:
        client.close()


def from_topic(
    settings: KafkaSettings, bootstrap: str, source: str, timeout_s: float = 10.0
) -> bytes | None:
    """The message at ``TOPIC:PARTITION:OFFSET``, or None if the topic no longer has it."""
    topic, partition, offset = source.rsplit(":", 2)
    c = consumer(settings, bootstrap, f"ahunt-dlq-get-{uuid.uuid4().hex[:8]}")
    try:
        c.assign([TopicPartition(topic, int(partition), int(offset))])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for m in c.consume(1, 0.5):
                if m.error() is None:  # a later offset: the one asked for is gone
                    return (m.value() or b"") if m.offset() == int(offset) else None
        return None
    finally:
        c.close()


def main(a: argparse.Namespace) -> int:
    if not a.sha256 and not a.source:
        raise SystemExit("give the envelope's original.sha256, or --source TOPIC:PARTITION:OFFSET")
    if a.source:
        data = from_topic(KafkaSettings(), bootstrap_servers(KafkaSettings()), a.source)
        where = f"{a.source} (no longer in the topic: its retention dropped it?)"
    else:
        url = require_redis_url("dlq", "the Redis the scorer keeps originals in")
        data = from_redis(url, a.sha256)
        where = (
            "Redis (see the envelope's original.kept; while the input topic keeps it, try "
            "--source with the envelope's source)"
        )
    if data is None:
        print(f"ahunt dlq: no original found in {where}", file=sys.stderr)
        return 1
    if a.sha256 and hashlib.sha256(data).hexdigest() != a.sha256.lower():
        print(f"ahunt dlq: {a.source} holds another message than {a.sha256}", file=sys.stderr)
        return 1
    if a.out:
        a.out.write_bytes(data)
        print(f"{len(data)} bytes written to {a.out}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
    return 0
