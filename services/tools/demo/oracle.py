"""``ahunt oracle``: a simulated user. It reads its own alert topic like a subscriber and labels
every alert it receives through the REST API, like a person would, from a ground-truth file.

Its answers: the true class as the label; ``interesting=true`` for the classes it came for,
``false`` for the ones it said bore it, and no opinion (``null``) for the rest. Alerts the truth
file does not know (real survey alerts replayed beside simulated ones) are left unlabelled.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Message

from services.common import schemas
from services.common.kafka import (
    ConsumerLoop,
    DeadLetter,
    Delivery,
    OutMessage,
    consumer,
    producer,
)
from services.common.settings import KafkaSettings
from services.common.topics import user_topic

log = logging.getLogger("ahunt.oracle")


def read_truth(path: Path) -> dict[str, dict[str, str]]:
    """``truth.csv`` (alert_id, object_id, night, class) -> alert_id -> row."""
    with open(path, newline="") as f:
        return {row["alert_id"]: row for row in csv.DictReader(f)}


@dataclass(frozen=True)
class Received:
    """One alert the oracle received, with what it knows about it."""

    alert_id: str
    true_class: str | None
    night: int | None
    model_version: str
    reason: str
    score: float
    labelled: bool


@dataclass
class Oracle:
    user: str
    token: str
    api_url: str  # e.g. http://127.0.0.1:8080
    truth: Mapping[str, Mapping[str, str]]
    interesting: frozenset[str]
    boring: frozenset[str]
    # A user hunting one kind answers "not interesting" to every other kind they are shown
    # (True), or labels them with no opinion (False) and only dismisses ``boring``.
    others_boring: bool = False
    received: list[Received] = field(default_factory=list)

    def answer(self, true_class: str) -> bool | None:
        if true_class in self.interesting:
            return True
        if true_class in self.boring or self.others_boring:
            return False
        return None

    def post_label(self, alert_id: str, label: str, interesting: bool | None) -> int:
        """POST /v1/feedback; retried on 429/503 (the API's own back-pressure), as it asks."""
        body = json.dumps({"alert_id": alert_id, "label": label, "interesting": interesting})
        for attempt in range(20):
            request = urllib.request.Request(
                f"{self.api_url}/v1/feedback",
                data=body.encode(),
                method="POST",
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "application/json",
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return int(response.status)
            except urllib.error.HTTPError as exc:
                if exc.code not in (429, 503):
                    return int(exc.code)
                wait = float(exc.headers.get("Retry-After") or 1)
                time.sleep(min(wait, 5.0) * (1 + attempt / 10))
        raise RuntimeError(f"feedback API kept refusing {alert_id}")

    def handle(self, record: Mapping[str, Any]) -> Received:
        alert_id = str(record["alert_id"])
        row = self.truth.get(alert_id)
        # A row with an empty class: an alert of the stream that the labels file does not know.
        true_class = (row.get("class") or None) if row else None
        labelled = False
        if true_class is not None:
            status = self.post_label(alert_id, true_class, self.answer(true_class))
            labelled = status in (200, 201)
            if not labelled:
                log.warning("%s: label for %s refused with %s", self.user, alert_id, status)
        received = Received(
            alert_id=alert_id,
            true_class=true_class,
            night=int(row["night"]) if row else None,
            model_version=str(record["model_version"]),
            reason=str(record["reason"]),
            score=float(record["score"]),
            labelled=labelled,
        )
        self.received.append(received)
        return received


def drain(
    oracle: Oracle,
    kafka: KafkaSettings,
    bootstrap: str,
    idle_s: float = 3.0,
    max_s: float = 120.0,
    group: str | None = None,
) -> list[Received]:
    """Read and label everything on the user's topic until it has been quiet for ``idle_s``.

    The one at-least-once loop (``ConsumerLoop``) runs it: the consumer group is the oracle's
    own, so a later call continues where this one stopped; offsets are committed after the labels
    are posted (a crash re-labels, which is idempotent), and a Kafka error stops the oracle
    rather than being skipped.
    """
    c = consumer(kafka, bootstrap, group or f"oracle-{oracle.user}")
    assigned = threading.Event()
    c.subscribe([user_topic(oracle.user)], on_assign=lambda _c, _parts: assigned.set())
    got: list[Received] = []

    def label(messages: Sequence[Message]) -> tuple[list[OutMessage], list[DeadLetter]]:
        for m in messages:
            got.append(oracle.handle(schemas.decode(schemas.USER_ALERT, m.value() or b"")))
        return [], []  # answers go to the REST API; nothing to produce

    loop = ConsumerLoop(
        c, Delivery(producer(kafka, bootstrap)), label, "oracle", batch_size=500, poll_timeout_s=0.5
    )
    deadline = time.monotonic() + max_s
    quiet_since: float | None = None  # the idle clock starts once the group has joined
    try:
        while time.monotonic() < deadline:
            if quiet_since is not None and time.monotonic() - quiet_since >= idle_s:
                break
            if loop.step() or (quiet_since is None and assigned.is_set()):
                quiet_since = time.monotonic()
    finally:
        c.close()
    return got


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user", required=True)
    p.add_argument("--token", required=True, help="the user's API token")
    p.add_argument("--api", default="http://127.0.0.1:8080", help="feedback API base URL")
    p.add_argument("--truth", type=Path, required=True, help="truth.csv from ahunt simulate")
    p.add_argument("--interesting", nargs="+", default=[], metavar="CLASS")
    p.add_argument("--boring", nargs="+", default=[], metavar="CLASS")
    p.add_argument(
        "--others-boring",
        action="store_true",
        help="answer 'not interesting' to every class not listed as interesting",
    )
    p.add_argument("--follow", action="store_true", help="keep reading until Ctrl-C")


def main(args: argparse.Namespace) -> int:
    kafka = KafkaSettings()
    bootstrap = kafka.bootstrap_servers
    if not bootstrap:
        raise SystemExit(
            "ahunt oracle: set KAFKA_BOOTSTRAP_SERVERS (e.g. the one `ahunt up` shows)"
        )
    oracle = Oracle(
        user=args.user,
        token=args.token,
        api_url=args.api.rstrip("/"),
        truth=read_truth(args.truth),
        interesting=frozenset(args.interesting),
        boring=frozenset(args.boring),
        others_boring=args.others_boring,
    )
    try:
        while True:
            got = drain(oracle, kafka, bootstrap, idle_s=5.0, max_s=3600.0)
            print(summary(oracle.received) if got else "nothing new", flush=True)
            if not args.follow:
                return 0
    except KeyboardInterrupt:
        return 0


def summary(received: Iterable[Received]) -> str:
    items = list(received)
    known = [r for r in items if r.true_class is not None]
    by_class: dict[str, int] = {}
    for r in known:
        by_class[r.true_class or "?"] = by_class.get(r.true_class or "?", 0) + 1
    parts = ", ".join(f"{k} {v}" for k, v in sorted(by_class.items(), key=lambda kv: -kv[1]))
    return f"{len(items)} received, {sum(r.labelled for r in items)} labelled: {parts}"
