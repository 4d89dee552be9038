"""Where does the scorer's latency tail come from? The same Kafka round trips with no scoring.

A relay runs the scorer's exact Kafka loop (``ConsumerLoop``: consume a batch, produce every
message to an output topic, wait for every delivery, commit explicit offsets) with a handler that
does nothing but copy. A producer thread sends fixed-size messages at a steady rate, each stamped
with its send time (the message's CreateTime, as the scorer reads it). Per message: latency =
commit time - send time; per batch: the time spent in each round trip. If this relay shows the
scorer's tail, the tail is the broker's (or the client's), not the scoring code's.

    python -m bench.broker_latency --rate 250 --seconds 20 --json bench/results/broker-latency.json

``KAFKA_BOOTSTRAP_SERVERS`` points it at a real broker; unset, it starts the embedded one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Message

from services.common.embedded import EmbeddedKafka
from services.common.kafka import (
    ConsumerLoop,
    Delivery,
    OutMessage,
    consumer,
    ensure_topics,
    producer,
)
from services.common.settings import KafkaSettings

WARMUP_S = 5.0


def _quantiles(values: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64) * 1000.0
    if not len(a):
        return {}
    return {
        "n": int(len(a)),
        "p50_ms": round(float(np.percentile(a, 50)), 1),
        "p99_ms": round(float(np.percentile(a, 99)), 1),
        "max_ms": round(float(a.max()), 1),
    }


def measure(
    bootstrap: str,
    rate: float,
    seconds: float,
    size: int,
    partitions: int,
    batch: int = 64,
    poll_timeout_s: float = 0.02,
    output_topics: int = 1,
) -> dict[str, Any]:
    settings = KafkaSettings()
    run = uuid.uuid4().hex[:8]
    src = f"probe.in.{run}"
    # Several output topics stand for users' topics: a scorer batch writes to many of them.
    dst = [f"probe.out.{run}.{i}" for i in range(output_topics)]
    ensure_topics(settings, bootstrap, [src, *dst], partitions=partitions)

    sent_at: dict[bytes, float] = {}
    committed_at: list[tuple[float, float]] = []  # (send time, commit time)
    stages: dict[str, list[float]] = {"handle": [], "produce": [], "commit": [], "batch": []}
    consume_gaps: list[float] = []
    last_end = [time.perf_counter()]

    def relay(messages: Sequence[Message]) -> tuple[list[OutMessage], list[Any]]:
        consume_gaps.append(time.perf_counter() - last_end[0])
        out = [
            OutMessage(dst[hash(m.key()) % len(dst)], m.value() or b"", m.key()) for m in messages
        ]
        return out, []

    def on_committed(messages: Sequence[Message]) -> None:
        now = time.time()
        for m in messages:
            committed_at.append((m.timestamp()[1] / 1000.0, now))  # the producer's CreateTime

    def on_batch(_n: int, s: float) -> None:
        stages["batch"].append(s)
        last_end[0] = time.perf_counter()

    loop = ConsumerLoop(
        consumer(settings, bootstrap, f"probe-{run}"),
        Delivery(producer(settings, bootstrap)),
        relay,
        "probe",
        on_stage=lambda stage, s: stages.setdefault(stage, []).append(s),
        on_batch=on_batch,
        on_committed=on_committed,
        batch_size=batch,
        poll_timeout_s=poll_timeout_s,
    )
    loop.consumer.subscribe([src])
    stop = threading.Event()

    def send() -> None:
        p = producer(settings, bootstrap)
        payload = os.urandom(size)
        start = time.perf_counter()
        i = 0
        while not stop.is_set():
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            key = f"{run}-{i}".encode()
            now_ms = int(time.time() * 1000)
            p.produce(src, payload, key, timestamp=now_ms)
            sent_at[key] = now_ms / 1000.0
            p.poll(0)
            i += 1
        p.flush(10)

    # Join the group first, so the join is not counted as latency.
    deadline = time.monotonic() + 30
    while not loop.consumer.assignment() and time.monotonic() < deadline:
        loop.step()
    sender = threading.Thread(target=send, daemon=True)
    t0 = time.time()
    sender.start()
    while time.time() - t0 < WARMUP_S + seconds:
        loop.step()
    stop.set()
    sender.join()
    end = time.time() + 5
    while time.time() < end:
        loop.step()
    loop.consumer.close()

    measured = [c - s for s, c in committed_at if s >= t0 + WARMUP_S]
    slow = sorted(((c - s), s - t0) for s, c in committed_at if s >= t0 + WARMUP_S)[-5:]
    return {
        "broker": "embedded Tansu" if not KafkaSettings().bootstrap_servers else bootstrap,
        "rate_per_s": rate,
        "seconds": seconds,
        "message_bytes": size,
        "partitions": partitions,
        "batch": batch,
        "output_topics": output_topics,
        "poll_timeout_s": poll_timeout_s,
        "sent": len(sent_at),
        "committed": len(committed_at),
        "latency_send_to_commit": _quantiles(measured),
        "slowest_at_s": [[round(lat * 1000), round(at, 2)] for lat, at in slow],
        "stages": {k: _quantiles(v) for k, v in stages.items()},
        "consume_wait": _quantiles(consume_gaps),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.broker_latency", description=__doc__)
    p.add_argument("--rate", type=float, default=250.0, help="messages/s")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--size", type=int, default=60_000, help="bytes per message (a ZTF alert)")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--batch", type=int, default=64, help="as the throughput bench's latency phase")
    p.add_argument("--poll-timeout", type=float, default=0.02, help="seconds, likewise")
    p.add_argument("--output-topics", type=int, default=1, help="relay over this many topics")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    bootstrap = KafkaSettings().bootstrap_servers
    with contextlib.ExitStack() as stack:
        if not bootstrap:
            bootstrap = stack.enter_context(EmbeddedKafka()).bootstrap_servers
        result = measure(
            bootstrap,
            a.rate,
            a.seconds,
            a.size,
            a.partitions,
            a.batch,
            a.poll_timeout,
            a.output_topics,
        )
    text = json.dumps(result, indent=2)
    print(text)
    if a.json:
        a.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
