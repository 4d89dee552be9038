"""What the fault tests share: scorer processes to start and kill, streams of real alerts with
ids and times of the test's choosing, and readers of what came out."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka import Message, TopicPartition

from services.common.kafka import consumer
from services.common.settings import KafkaSettings

REPO = Path(__file__).resolve().parents[1]
JD_UNIX_EPOCH = 2440587.5


def scorer_process(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m services.scorer`` with ``env`` on top of this process's environment."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.scorer"],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def scorer_env(
    bootstrap: str, redis_url: str, topic: str, group: str, model_dir: Path, **extra: str
) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "REDIS_URL": redis_url,
        "KAFKA_SESSION_TIMEOUT_MS": "3000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "AHUNT_SCORER_INPUT_TOPICS": f'["{topic}"]',
        "AHUNT_SCORER_GROUP_ID": group,
        "AHUNT_SCORER_MODEL_DIR": str(model_dir),
        "AHUNT_SCORER_METRICS_PORT": "0",
        "AHUNT_SCORER_USERS_REFRESH_S": "1",
        **{f"AHUNT_SCORER_{k.upper()}": v for k, v in extra.items()},
    }


def single_records(payloads: Iterable[bytes]) -> list[tuple[Any, dict[str, Any]]]:
    """(parsed schema, record) of each single-record container among ``payloads``."""
    out = []
    for payload in payloads:
        reader = fastavro.reader(io.BytesIO(payload))
        records = list(reader)
        if len(records) == 1 and isinstance(records[0], dict):
            out.append((fastavro.parse_schema(reader.writer_schema), records[0]))
    return out


def ztf_stream(
    originals: list[tuple[Any, dict[str, Any]]],
    n: int,
    first_id: int,
    start_unix: float,
    seconds: float,
) -> Iterator[tuple[str, bytes]]:
    """``n`` ZTF packets (alert id, bytes) made from the real ``originals`` in turn, with ids
    ``first_id``, ``first_id + 1``... and observation times spread evenly over ``seconds`` from
    ``start_unix``."""
    for i in range(n):
        schema, record = originals[i % len(originals)]
        candid = first_id + i
        jd = JD_UNIX_EPOCH + (start_unix + seconds * i / max(n, 1)) / 86_400.0
        buf = io.BytesIO()
        fastavro.writer(
            buf,
            schema,
            [{**record, "candid": candid, "candidate": {**record["candidate"], "jd": jd}}],
        )
        yield str(candid), buf.getvalue()


def read_topic(
    bootstrap: str,
    settings: KafkaSettings,
    topic: str,
    done: Any = None,
    timeout_s: float = 60.0,
    idle_s: float = 4.0,
) -> list[Message]:
    """Every message of ``topic``: until ``done(messages)`` holds, or nothing new came for
    ``idle_s`` (when ``done`` is None), or ``timeout_s``."""
    c = consumer(settings, bootstrap, f"read-{time.monotonic_ns()}")
    c.subscribe([topic])
    got: list[Message] = []
    deadline, last = time.monotonic() + timeout_s, time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = [m for m in c.consume(1000, 0.5) if m.error() is None]
            if batch:
                got += batch
                last = time.monotonic()
            if done is not None and done(got):
                break
            if done is None and time.monotonic() - last > idle_s:
                break
    finally:
        c.close()
    return got


def read_keys(
    bootstrap: str, settings: KafkaSettings, topic: str, want: set[str], timeout_s: float = 60.0
) -> set[str]:
    """The keys of ``topic``'s messages, read until they cover ``want`` (or ``timeout_s``)."""
    got = read_topic(
        bootstrap, settings, topic, done=lambda ms: want <= _keys(ms), timeout_s=timeout_s
    )
    return _keys(got)


def _keys(messages: list[Message]) -> set[str]:
    return {(m.key() or b"").decode() for m in messages}


def committed(bootstrap: str, settings: KafkaSettings, group: str, topic: str, parts: int) -> int:
    """Offsets ``group`` committed on ``topic``, summed (without joining the group)."""
    c = consumer(settings, bootstrap, group)
    try:
        found = c.committed([TopicPartition(topic, p) for p in range(parts)], timeout=10)
        return sum(max(tp.offset, 0) for tp in found)
    finally:
        c.close()


def wait_until(condition: Any, timeout_s: float, every_s: float = 0.5) -> bool:
    """Poll ``condition()`` until it holds (True) or ``timeout_s`` passed (False)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every_s)
    return True


def reference_outputs(
    payloads: list[bytes], model_root: Path, redis_client: Any, src: str, partitions: int
) -> dict[str, set[str]]:
    """The fault-free run: the scorer's own handler over the whole stream, in-process; the keys
    each output topic must hold."""
    from prometheus_client import CollectorRegistry

    from services.scorer.app import Scorer
    from services.scorer.metrics import ScorerMetrics
    from services.scorer.model import ModelSlot, load_model
    from services.scorer.settings import ScorerSettings

    slot = ModelSlot()
    slot.swap("ztf", load_model(model_root / "ztf" / "ztf-0001"))
    settings = ScorerSettings(model_dir=model_root, metrics_port=0)
    scorer = Scorer(settings, slot, redis_client, ScorerMetrics(CollectorRegistry()), None)
    scorer.refresh_users(force=True)
    want: dict[str, set[str]] = {}
    for start in range(0, len(payloads), 256):
        messages = [
            Message(topic=src, partition=i % partitions, offset=i, value=p, timestamp=(1, 1))
            for i, p in enumerate(payloads[start : start + 256], start)
        ]
        outputs, dead = scorer(messages)
        assert dead == []
        for out in outputs:
            want.setdefault(out.topic, set()).add((out.key or b"").decode())
    return want
