"""kill -9 of a scorer, 3 times at random moments, while 2 scorers share a 4-partition stream of
real alerts (issue 17, fault suite). Every user topic must hold every alert of a fault-free run
of the same stream and model (compared by key), duplicates only as copies of the same record.
The test prints what it measured: replayed deliveries and the time each kill took to resume.

AHUNT_FAULTS_ALERTS sets the stream's length (CI: 2,000; the recorded run: 10,000, see
docs/RELIABILITY.md)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import redis
from confluent_kafka import KafkaError, Message, TopicPartition

from services.common import schemas, store
from services.common.embedded import free_port
from services.common.kafka import consumer, producer
from services.common.settings import KafkaSettings
from services.common.topics import user_topic
from services.common.users import Budget, Filters, UserProfile
from services.tools.demo.observe import metric_samples
from tests.scorer_support import (
    committed,
    read_topic,
    reference_outputs,
    scorer_env,
    scorer_process,
    single_records,
    wait_until,
    ztf_stream,
)

pytestmark = pytest.mark.slow
ALERTS = int(os.environ.get("AHUNT_FAULTS_ALERTS", "2000"))
PARTITIONS, KILLS, RATE = 4, 3, 150.0  # alerts per second produced
NIGHT_START = 1_704_085_200.0


class Scorers:
    """The scorer processes, each with its own metrics port, and the input messages each life
    consumed (``ahunt_scorer_alerts_consumed_total``, scraped every 0.2 s: a killed life's last
    fraction of a second is not seen, so replays are counted from below)."""

    def __init__(self, env: dict[str, str], log: Path, count: int) -> None:
        self.env, self.log = env, log
        self.lives: list[tuple[subprocess.Popen[bytes], int]] = []
        self.consumed: dict[int, float] = {}  # per life (its index in self.lives)
        self.running = [self._start() for _ in range(count)]

    def _start(self) -> int:
        port = free_port()
        process = scorer_process({**self.env, "AHUNT_SCORER_METRICS_PORT": str(port)}, self.log)
        self.lives.append((process, port))
        return len(self.lives) - 1

    def scrape(self) -> None:
        for life in self.running:
            process, port = self.lives[life]
            with contextlib.suppress(OSError):  # not listening yet, or just killed
                self.consumed[life] = sum(
                    sample.value
                    for sample in metric_samples(f"http://127.0.0.1:{port}/metrics")
                    if sample.name == "ahunt_scorer_alerts_consumed_total"
                )

    def kill_and_restart(self, which: int) -> None:
        process, _port = self.lives[self.running[which]]
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        self.running[which] = self._start()

    def alive(self) -> bool:
        return all(self.lives[life][0].poll() is None for life in self.running)

    def stop(self, timeout_s: float = 60.0) -> list[int | str]:
        """SIGTERM the running lives; those still running after ``timeout_s`` are killed. Their
        exit statuses (0: stopped cleanly; "killed": did not stop)."""
        for life in self.running:
            self.lives[life][0].terminate()
        statuses: list[int | str] = []
        for life in self.running:
            process = self.lives[life][0]
            try:
                statuses.append(process.wait(timeout_s))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(30)
                statuses.append("killed")
        return statuses


class Killer(threading.Thread):
    """kill -9 a random scorer at each of ``moments`` (seconds from start, or as soon as the
    previous kill resumed), restart it at once, and measure how long the stream took to resume:
    until every partition's committed offset moved past where it stood at the kill, or reached
    the end of what was produced to it."""

    def __init__(
        self,
        scorers: Scorers,
        moments: list[float],
        offsets: Callable[[], list[int]],
        produced: list[int],
        rng: np.random.Generator,
    ) -> None:
        super().__init__(name="killer", daemon=True)
        self.scorers, self.moments = scorers, moments
        self.offsets, self.produced, self.rng = offsets, produced, rng
        self.killed_at: list[float] = []
        self.resume_s: list[float] = []
        self.error: BaseException | None = None
        self.done = threading.Event()

    def resumed(self, at_kill: list[int]) -> bool:
        self.scorers.scrape()
        now = self.offsets()
        return all(
            n > then or n > last for n, then, last in zip(now, at_kill, self.produced, strict=True)
        )

    def run(self) -> None:
        try:
            began = time.monotonic()
            for moment in self.moments:
                while time.monotonic() < began + moment:
                    self.scorers.scrape()
                    time.sleep(0.2)
                self.scorers.scrape()
                at_kill = self.offsets()
                killed_at = time.monotonic()
                self.killed_at.append(killed_at - began)
                self.scorers.kill_and_restart(int(self.rng.integers(len(self.scorers.running))))
                ok = wait_until(lambda at_kill=at_kill: self.resumed(at_kill), 120, 0.2)
                self.resume_s.append(time.monotonic() - killed_at if ok else float("inf"))
            while not self.done.is_set():  # the survivors' counts, until the end
                self.scorers.scrape()
                self.done.wait(0.2)
            self.scorers.scrape()
        except BaseException as exc:  # reported by the test
            self.error = exc


def test_kill_9_of_a_scorer_three_times_loses_nothing(
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
    originals = single_records(ztf_payloads)
    stream = [p for _, p in ztf_stream(originals, ALERTS, 4 * 10**17, NIGHT_START, 8 * 3_600.0)]
    src = new_topic("alerts", partitions=PARTITIONS)
    magnitudes = sorted(r["candidate"]["magpsf"] for _, r in originals)
    users = [
        UserProfile(name=f"all-{group_id}", budget=Budget(alerts=10**6)),
        UserProfile(
            name=f"bright-{group_id}",
            budget=Budget(alerts=10**6),
            filters=Filters(max_magnitude=magnitudes[len(magnitudes) // 2]),
        ),
    ]
    for user in users:
        store.save_profile(redis_client, user)
    want = reference_outputs(stream, model_root, redis_client, src, PARTITIONS)
    assert set(want) == {user_topic(u.name) for u in users}

    env = scorer_env(kafka_bootstrap, redis_server.url, src, group_id, model_root, batch_size="64")
    log = tmp_path / "scorers.log"
    scorers = Scorers(env, log, 2)
    rng = np.random.default_rng(17)
    duration = ALERTS / RATE
    moments = sorted(rng.uniform(0.15 * duration, 0.85 * duration, KILLS))

    def offsets() -> list[int]:
        c = consumer(kafka_settings, kafka_bootstrap, group_id)
        try:
            found = c.committed([TopicPartition(src, p) for p in range(PARTITIONS)], timeout=10)
            return [tp.offset for tp in found]
        finally:
            c.close()

    produced = [-1] * PARTITIONS  # the last offset produced to each partition

    def delivered(err: KafkaError | None, msg: Message) -> None:
        assert err is None, err
        produced[msg.partition()] = max(produced[msg.partition()], msg.offset())

    killer = Killer(scorers, moments, offsets, produced, rng)
    started = time.monotonic()
    try:
        p = producer(kafka_settings, kafka_bootstrap)
        killer.start()
        for i, payload in enumerate(stream):
            p.produce(src, payload, on_delivery=delivered)
            if i % 50 == 49:
                p.poll(0)
                time.sleep(max(0.0, started + (i + 1) / RATE - time.monotonic()))
        assert p.flush(30) == 0
        assert wait_until(
            lambda: committed(kafka_bootstrap, kafka_settings, group_id, src, PARTITIONS) >= ALERTS,
            300,
        ), log.read_text()[-3000:]
        total_s = time.monotonic() - started
        killer.done.set()
        killer.join(300)
        assert killer.error is None and not killer.is_alive()
        assert len(killer.resume_s) == KILLS and scorers.alive(), log.read_text()[-3000:]
    finally:
        killer.done.set()
        statuses = scorers.stop()
    # SIGTERM: a clean exit after the current batch (or death by it, before the handler is set)
    assert set(statuses) <= {0, -signal.SIGTERM}, f"{statuses}: {log.read_text()[-3000:]}"

    replayed_inputs = sum(scorers.consumed.values()) - ALERTS
    replays = 0
    for user in users:
        topic = user_topic(user.name)
        got = read_topic(
            kafka_bootstrap, kafka_settings, topic, done=lambda ms, t=topic: _covers(ms, want[t])
        )
        keys = Counter((m.key() or b"").decode() for m in got)
        assert set(keys) == want[topic], f"{topic}: {len(want[topic] - set(keys))} missing"
        same = {}
        for m in got:  # a duplicate is a copy of the same record (times aside)
            record = schemas.decode(schemas.USER_ALERT, m.value())
            core = (record["alert_id"], record["score"], record["model_version"], record["reason"])
            assert same.setdefault(core[0], core) == core
        replays += sum(n - 1 for n in keys.values())
    print(
        f"\n{ALERTS} alerts, {KILLS} kills at {[round(m, 1) for m in killer.killed_at]} s: "
        f"{replayed_inputs:.0f}+ input messages replayed ({replays} deliveries twice), "
        f"resumed after {[round(s, 1) for s in killer.resume_s]} s, "
        f"all committed after {total_s:.0f} s"
    )
    assert all(s < 120 for s in killer.resume_s)


def _covers(messages: list[Message], want: set[str]) -> bool:
    return want <= {(m.key() or b"").decode() for m in messages}
