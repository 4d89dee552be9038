"""`ahunt replay` and `ahunt subscribe` against a real broker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from services.cli import main
from services.common import schemas
from services.common.kafka import Delivery, OutMessage, producer
from services.common.settings import KafkaSettings
from services.common.topics import user_topic
from tests.samples import ROOT, sample_files


def test_replay_splits_containers_one_alert_per_message(
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    new_topic,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    topic = new_topic("replay")
    files = sample_files("ztf")
    assert main(["replay", *map(str, files), "--topic", topic, "--loop", "2"]) == 0
    out = capsys.readouterr().out
    # 7 single-alert files + one file of 3 records, twice
    assert out.startswith(f"{2 * (len(files) - 1 + 3)} messages from {len(files)} files")


def test_subscribe_prints_and_saves_cutouts(
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    group_id: str,
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    user = f"sub-{group_id}"
    from services.common.alerts import Alert, decode_message

    alert = next(
        r for r in decode_message(sample_files("ztf")[0].read_bytes()) if isinstance(r, Alert)
    )
    record = {
        "alert_id": alert.alert_id,
        "object_id": alert.object_id,
        "survey": "ztf",
        "user": user,
        "score": 0.9,
        "reason": "top",
        "class_probabilities": {"reserve": 0.9, "normal": 0.1},
        "novelty": 1.5,
        "model_version": "ztf-0001",
        "ra": alert.ra,
        "dec": alert.dec,
        "magnitude": alert.magnitude,
        "alert_time": None,
        "scored_at": int(time.time() * 1000),
        "published_at": int(time.time() * 1000),
        "cutout_science": alert.cutout_bytes[0],
        "cutout_template": alert.cutout_bytes[1],
        "cutout_difference": alert.cutout_bytes[2],
    }
    Delivery(producer(kafka_settings, kafka_bootstrap)).send(
        [
            OutMessage(
                user_topic(user),
                schemas.encode(schemas.USER_ALERT, record),
                key=alert.alert_id.encode(),
            )
        ]
    )
    assert (
        main(
            [
                "subscribe",
                "--user",
                user,
                "--from-beginning",
                "--max",
                "1",
                "--save-png",
                str(tmp_path),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert alert.alert_id in out and "reserve=0.90" in out
    png = (tmp_path / f"{alert.alert_id}.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000
    assert ROOT.exists()
