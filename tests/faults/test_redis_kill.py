"""kill -9 of Redis mid-stream, with persistence as ``ahunt up`` runs it (appendonly yes,
appendfsync always): the scorer pauses at its last commit and resumes by itself; the feedback
API answers 503 (never 500) while Redis is away; once Redis is back from its AOF, every
acknowledged label is there and every alert reached the user's topic.

A scorer process (the real one) consumes a stream of real ZTF alerts on two partitions while a
client labels through the real API (uvicorn, HTTP) as fast as it is answered; Redis is killed
with SIGKILL once a third of the stream is committed and restarted on the same directory and port
``AHUNT_FAULTS_REDIS_DOWN_S`` later. AHUNT_FAULTS_REDIS_ALERTS sizes the stream.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from services.common import keys, store
from services.common.embedded import EmbeddedRedis
from services.common.kafka import producer
from services.common.labels import LabelRecord
from services.common.settings import KafkaSettings
from services.common.topics import user_topic
from services.common.users import Budget, UserProfile
from services.feedback.serve import serve_in_thread
from services.feedback.tokens import add_user
from tests.integration.test_feedback_support import bearer, make_app, seed_alert
from tests.scorer_support import (
    committed,
    read_topic,
    scorer_env,
    scorer_process,
    single_records,
    wait_until,
    ztf_stream,
)

pytestmark = pytest.mark.slow
ALERTS = int(os.environ.get("AHUNT_FAULTS_REDIS_ALERTS", "900"))
DOWN_S = float(os.environ.get("AHUNT_FAULTS_REDIS_DOWN_S", "3"))
LABELLED = 40  # alerts the client labels, again and again (each post a new class name)


class Labeller(threading.Thread):
    """Posts labels until stopped; remembers every answer: (post number, alert, status)."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.headers = url, bearer(token)
        self.answers: list[tuple[int, str, int, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            i = 0
            while not self.stop.is_set():
                alert = str(5000 + i % LABELLED)
                body = {"alert_id": alert, "label": f"c{i}"}
                try:
                    status = http.post("/v1/feedback", json=body, headers=self.headers).status_code
                except httpx.HTTPError:
                    status = 0
                self.answers.append((i, alert, status, time.monotonic()))
                i += 1
                time.sleep(0.01)

    def acknowledged(self) -> list[tuple[int, str]]:
        return [(i, a) for i, a, status, _ in self.answers if status in (200, 201)]


def test_redis_killed_mid_stream_loses_no_alert_and_no_acknowledged_label(
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    group_id: str,
    model_root: Path,
    ztf_payloads: list[bytes],
    tmp_path: Path,
) -> None:
    directory = tmp_path / "redis"
    server = EmbeddedRedis(directory=directory).start()
    port = server.port
    client = store.connect(server.url)
    user = UserProfile(name=f"all-{group_id}", budget=Budget(alerts=10**6))
    store.save_profile(client, user)
    token = add_user(client, "labeller")
    for n in range(LABELLED):
        seed_alert(client, str(5000 + n))
    src = new_topic("alerts", partitions=2)
    stream = list(ztf_stream(single_records(ztf_payloads), ALERTS, 4 * 10**17, 1.7e9, 3_600.0))
    p = producer(kafka_settings, kafka_bootstrap)
    for i, (_, payload) in enumerate(stream):
        p.produce(src, payload, partition=i % 2)
    assert p.flush(10) == 0

    app, _ = make_app(server.url, retry_after_s=1, redis_timeout_s=2.0)
    api = serve_in_thread(app)
    labeller = Labeller(api.url, token)
    log = tmp_path / "scorer.log"
    scorer = scorer_process(
        scorer_env(kafka_bootstrap, server.url, src, group_id, model_root, batch_size="50"), log
    )
    try:
        labeller.start()
        assert wait_until(
            lambda: committed(kafka_bootstrap, kafka_settings, group_id, src, 2) >= ALERTS // 3,
            120,
            0.1,
        ), log.read_text()[-3000:]
        acknowledged_before = len(labeller.acknowledged())
        server.process.kill()  # type: ignore[union-attr]  # SIGKILL: no shutdown, no final save
        server.process.wait()  # type: ignore[union-attr]
        killed = time.monotonic()
        at_kill = committed(kafka_bootstrap, kafka_settings, group_id, src, 2)
        time.sleep(DOWN_S)
        assert scorer.poll() is None, "the scorer exited instead of pausing"
        assert committed(kafka_bootstrap, kafka_settings, group_id, src, 2) == at_kill
        restarting = time.monotonic()
        server = EmbeddedRedis(directory=directory, port=port).start()
        back = time.monotonic()
        assert wait_until(
            lambda: committed(kafka_bootstrap, kafka_settings, group_id, src, 2) > at_kill, 60, 0.1
        ), log.read_text()[-3000:]
        resumed = time.monotonic() - back
        assert wait_until(
            lambda: committed(kafka_bootstrap, kafka_settings, group_id, src, 2) >= ALERTS, 180
        ), log.read_text()[-3000:]
        time.sleep(0.5)  # a few labels after the recovery too
    finally:
        labeller.stop.set()
        labeller.join(15)
        scorer.terminate()
        scorer.wait(30)
        api.stop()
    try:
        statuses = [s for _, _, s, _ in labeller.answers]
        during = [s for _, _, s, t in labeller.answers if killed + 0.2 <= t < restarting]
        refused = [s for s in statuses if s not in (200, 201)]
        assert set(refused) <= {503}, f"answers other than 503 while Redis was away: {refused}"
        assert during and set(during) == {503}
        acknowledged = labeller.acknowledged()
        assert len(acknowledged) > acknowledged_before > 0  # labels before, and after, the kill
        # Every acknowledged label is in Redis: each alert holds its latest acknowledged post or a
        # later one (a post whose answer was lost may still have been written).
        client = store.connect(server.url)
        stored = {
            k.decode(): LabelRecord.model_validate_json(v).label
            for k, v in client.hgetall(keys.labels_key("labeller")).items()
        }
        latest: dict[str, int] = {}
        for i, alert in acknowledged:
            latest[alert] = max(latest.get(alert, -1), i)
        missing = [a for a, i in latest.items() if a not in stored or int(stored[a][1:]) < i]
        assert not missing, f"acknowledged labels lost: {missing}"
        assert int(client.get(keys.LABELS_REVISION) or 0) >= len(acknowledged)
        got = read_topic(kafka_bootstrap, kafka_settings, user_topic(user.name))
        ids = [(m.key() or b"").decode() for m in got]
        assert set(ids) == {alert_id for alert_id, _ in stream}
        print(
            f"\nRedis kill -9: {ALERTS} alerts, Redis away {back - killed:.1f} s; scorer resumed "
            f"{resumed:.1f} s after Redis was back; {len(ids) - len(set(ids))} duplicate "
            f"deliveries; labels: {len(acknowledged)} acknowledged, {len(during)} answered 503 "
            f"while away, {len(missing)} lost"
        )
    finally:
        server.stop()
