"""Feedback events reach Kafka (real broker) after the label is durable; with Kafka down the
label is still acknowledged and its event waits in the Redis outbox until a producer can
deliver it, so no event is lost."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
from confluent_kafka import Consumer, KafkaError

from services.common import keys, schemas
from services.common.embedded import EmbeddedKafka, EmbeddedRedis, free_port
from services.common.kafka import consumer, producer
from services.common.settings import KafkaSettings
from services.feedback.handler import EVENT_SCHEMA
from services.feedback.tokens import add_user
from tests.integration.test_feedback_support import TestClient, bearer, make_app, seed_alert


def read_events(c: Consumer, n: int, timeout_s: float = 30.0) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        err = m.error()
        if err is not None:
            assert err.code() == KafkaError._PARTITION_EOF, err
            continue
        event = schemas.decode(EVENT_SCHEMA, m.value() or b"")
        out.append((m.key(), dict(m.headers() or []), event))
    return out


def wait_until(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_label_and_undo_events_arrive_on_the_feedback_topic(
    redis_server: EmbeddedRedis,
    redis_client: redis.Redis,
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    group_id: str,
) -> None:
    topic = new_topic("ahunt.feedback")
    token = bearer(add_user(redis_client, "alice"))
    seed_alert(redis_client, "77", delivered_to=["alice"])
    app, _ = make_app(
        redis_server.url,
        producer(kafka_settings, kafka_bootstrap),
        events_topic=topic,
        outbox_poll_s=0.2,
    )
    c = consumer(kafka_settings, kafka_bootstrap, group_id)
    c.subscribe([topic])
    try:
        with TestClient(app) as http:
            body = {"alert_id": "77", "label": "SN Ia", "interesting": True, "comment": "bright"}
            assert http.post("/v1/feedback", json=body, headers=token).status_code == 201
            assert http.delete("/v1/feedback/77", headers=token).status_code == 204
            events = read_events(c, 2)
            wait_until(lambda: redis_client.llen(keys.FEEDBACK_OUTBOX) == 0)
            assert "ahunt_feedback_events_published_total 2.0" in http.get("/metrics").text
    finally:
        c.close()
    assert [e[2]["kind"] for e in events] == ["label", "undo"]  # commit order
    key, headers, label = events[0]
    assert key == b"alice"
    assert headers["ahunt-schema"] == b"ahunt.v1.FeedbackEvent"
    assert headers["ahunt-schema-version"] == b"1"
    assert headers["ahunt-event-id"].decode() == label["event_id"]
    assert (
        label["user"],
        label["alert_id"],
        label["label"],
        label["interesting"],
        label["comment"],
        label["survey"],
        label["model_version"],
    ) == ("alice", "77", "sn_ia", True, "bright", "ztf", "ztf-0001")
    assert events[1][2]["label"] == "sn_ia" and events[1][2]["event_id"] != label["event_id"]


def test_kafka_down_keeps_events_in_the_outbox_until_delivered(
    redis_server: EmbeddedRedis,
    redis_client: redis.Redis,
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    group_id: str,
) -> None:
    topic = new_topic("ahunt.feedback")
    token = bearer(add_user(redis_client, "bob"))
    seed_alert(redis_client, "88")
    # A broker address where nothing listens: every delivery attempt fails.
    dead = producer(
        kafka_settings, f"127.0.0.1:{free_port()}", **{"message.timeout.ms": 1000, "log_level": 0}
    )
    app, _ = make_app(
        redis_server.url, dead, events_topic=topic, outbox_poll_s=0.2, outbox_flush_timeout_s=0.5
    )
    with TestClient(app) as http:
        r = http.post("/v1/feedback", json={"alert_id": "88", "label": "agn"}, headers=token)
        assert r.status_code == 201  # durable in Redis: acknowledged whatever Kafka does
        wait_until(
            lambda: "ahunt_feedback_publish_errors_total 0.0" not in http.get("/metrics").text
        )
        assert redis_client.llen(keys.FEEDBACK_OUTBOX) == 1
    assert redis_client.llen(keys.FEEDBACK_OUTBOX) == 1  # shutdown did not drop it either
    del app, dead  # stop the dead producer's reconnect attempts

    # Kafka is back (an API with a working producer): the waiting event goes out.
    app, _ = make_app(
        redis_server.url,
        producer(kafka_settings, kafka_bootstrap),
        events_topic=topic,
        outbox_poll_s=0.2,
    )
    c = consumer(kafka_settings, kafka_bootstrap, group_id)
    c.subscribe([topic])
    try:
        with TestClient(app):
            events = read_events(c, 1)
            wait_until(lambda: redis_client.llen(keys.FEEDBACK_OUTBOX) == 0)
    finally:
        c.close()
    assert [(e[2]["user"], e[2]["alert_id"], e[2]["label"]) for e in events] == [
        ("bob", "88", "agn")
    ]


def test_events_reach_a_broker_restarted_without_its_state(
    redis_server: EmbeddedRedis,
    redis_client: redis.Redis,
    kafka_settings: KafkaSettings,
) -> None:
    """The embedded broker killed and restarted empty: the idempotent producer's sequence
    numbers are refused for ever by the new broker, so the publisher must go on through a new
    producer; the event labelled after the restart arrives, the API process unchanged."""
    topic = "ahunt.feedback.restart"
    token = bearer(add_user(redis_client, "carol"))
    for alert in ("91", "92"):
        seed_alert(redis_client, alert)
    with EmbeddedKafka() as broker:
        bootstrap = broker.bootstrap_servers
        fast = {"message.timeout.ms": 2000}
        app, _ = make_app(
            redis_server.url,
            producer(kafka_settings, bootstrap, **fast),
            events_topic=topic,
            outbox_poll_s=0.2,
            outbox_flush_timeout_s=1.0,
            new_producer=lambda: producer(kafka_settings, bootstrap, **fast),
        )
        with TestClient(app) as http:
            r = http.post("/v1/feedback", json={"alert_id": "91", "label": "agn"}, headers=token)
            assert r.status_code == 201
            wait_until(lambda: redis_client.llen(keys.FEEDBACK_OUTBOX) == 0)
            broker.kill()
            broker.start()  # same port, nothing in it
            r = http.post("/v1/feedback", json={"alert_id": "92", "label": "sn"}, headers=token)
            assert r.status_code == 201
            wait_until(lambda: redis_client.llen(keys.FEEDBACK_OUTBOX) == 0, 60)
        c = consumer(kafka_settings, bootstrap, "after-restart")
        c.subscribe([topic])
        try:
            events = read_events(c, 1)
        finally:
            c.close()
    assert [(e[2]["alert_id"], e[2]["label"]) for e in events] == [("92", "sn")]
