"""The demo's simulated user reads its topic through the one at-least-once loop: what it got is
committed, so the next read continues after it."""

from __future__ import annotations

import uuid

from services.common import schemas
from services.common.kafka import Delivery, OutMessage, ensure_topics, producer
from services.common.settings import KafkaSettings
from services.common.topics import user_topic
from services.tools.demo.oracle import Oracle, drain


def _record(alert_id: str, user: str) -> dict[str, object]:
    return {
        "alert_id": alert_id,
        "object_id": "ZTF00aaaaaaa",
        "survey": "ztf",
        "user": user,
        "score": 0.5,
        "reason": "top",
        "class_probabilities": {"reserve": 0.5, "normal": 0.5},
        "novelty": 0.1,
        "model_version": "ztf-0001",
        "ra": 10.0,
        "dec": 20.0,
        "magnitude": 18.0,
        "alert_time": None,
        "scored_at": 0,
        "published_at": 0,
        "cutout_science": b"",
        "cutout_template": b"",
        "cutout_difference": b"",
    }


def test_drain_reads_each_alert_once_and_commits(
    kafka_bootstrap: str, kafka_settings: KafkaSettings
) -> None:
    user = f"oracle{uuid.uuid4().hex[:8]}"
    topic = user_topic(user)
    ensure_topics(kafka_settings, kafka_bootstrap, [topic])
    send = Delivery(producer(kafka_settings, kafka_bootstrap)).send
    encoded = [schemas.encode(schemas.USER_ALERT, _record(str(i), user)) for i in range(3)]
    send([OutMessage(topic, v) for v in encoded])
    # An empty truth file: nothing is posted to the API, every alert is still received.
    oracle = Oracle(user, "token", "http://127.0.0.1:9", {}, frozenset(), frozenset())

    first = drain(oracle, kafka_settings, kafka_bootstrap, idle_s=1.0, max_s=60.0)
    assert sorted(r.alert_id for r in first) == ["0", "1", "2"]
    assert not any(r.labelled for r in first)
    send([OutMessage(topic, schemas.encode(schemas.USER_ALERT, _record("3", user)))])
    second = drain(oracle, kafka_settings, kafka_bootstrap, idle_s=1.0, max_s=60.0)
    assert [r.alert_id for r in second] == ["3"]  # the first read was committed
