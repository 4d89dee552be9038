"""``ahunt scorer --workers 2`` on the real broker and Redis: two processes in one consumer group
share the partitions (both score), every alert is committed, SIGTERM stops them cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import redis

from services.common import store
from services.common.embedded import free_port
from services.common.kafka import Delivery, OutMessage, ensure_topics, producer
from services.common.settings import KafkaSettings
from services.common.topics import user_topic
from services.common.users import Budget, UserProfile
from tests.scorer_support import REPO, committed, scorer_env, single_records, wait_until, ztf_stream

ALERTS, PARTITIONS = 200, 4


def _metric(port: int, name: str) -> float:
    """A worker's unlabelled metric, -1 while its /metrics does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return -1.0
    line = next((x for x in text.splitlines() if x.startswith(name + " ")), "")
    return float(line.split()[1]) if line else -1.0


def test_two_workers_share_the_partitions_and_stop_on_sigterm(
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    group_id: str,
    model_root: Path,
    redis_server,
    redis_client: redis.Redis,
    ztf_payloads: list[bytes],
    tmp_path: Path,
) -> None:
    src = new_topic("alerts", partitions=PARTITIONS)
    user = UserProfile(name=f"w-{group_id}", budget=Budget(alerts=5), strategy={"top": 1.0})
    store.save_profile(redis_client, user)
    ensure_topics(kafka_settings, kafka_bootstrap, [user_topic(user.name)])
    base = free_port()
    env = scorer_env(kafka_bootstrap, redis_server.url, src, group_id, model_root, batch_size="16")
    env["AHUNT_SCORER_METRICS_PORT"] = str(base)
    log = tmp_path / "workers.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.scorer", "--workers", "2"],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # Both joined the group: each owns half of the partitions (then the alerts come, so
        # that one worker cannot drain them all before the other joins).
        assert wait_until(
            lambda: all(
                _metric(port, "ahunt_scorer_partition_share") == 0.5 for port in (base, base + 1)
            ),
            120,
        ), log.read_text()[-3000:]
        stream = ztf_stream(single_records(ztf_payloads), ALERTS, 7_000_000, 1_704_085_200.0, 3600)
        Delivery(producer(kafka_settings, kafka_bootstrap)).send(
            [OutMessage(src, payload, key=alert_id.encode()) for alert_id, payload in stream]
        )
        assert wait_until(
            lambda: committed(kafka_bootstrap, kafka_settings, group_id, src, PARTITIONS) >= ALERTS,
            120,
        ), log.read_text()[-3000:]
        # Each worker serves its own /metrics, and both consumed a share of the alerts.
        counts = [_metric(p, "ahunt_scorer_alerts_consumed_total") for p in (base, base + 1)]
        assert all(c > 0 for c in counts) and sum(counts) >= ALERTS, counts
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
        assert time.monotonic() - started < 60
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_workers_that_keep_failing_end_the_command_with_an_error(tmp_path: Path) -> None:
    """A configuration every worker refuses (a weak model signing key): the supervisor restarts
    them with a backoff, then gives up and exits 1 instead of restarting forever."""
    log = tmp_path / "failing.log"
    env = {
        **os.environ,
        "AHUNT_MODEL_SIGNING_KEY": "short",
        "AHUNT_SCORER_METRICS_PORT": "0",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",  # never reached: the key is refused first
    }
    with open(log, "ab") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "services.scorer", "--workers", "2"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=120,
        )
    text = log.read_text()
    assert proc.returncode == 1, text[-3000:]
    assert text.count("signing key must hold at least 32 bytes") >= 6  # restarted, then gave up
    assert "stopping all workers" in text
