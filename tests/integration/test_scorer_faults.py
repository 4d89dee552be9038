"""One bad alert fails only itself (issue 17, items 1, 3 and 4), through the scorer's real handler
with real packets, a real model and a real Redis: a broken record of a real multi-record packet
is one envelope and the others flow; an alert that breaks preprocessing, the model's outputs or
the encoding is its own dead letter; a survey without a model holds back its own alerts only."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import redis
from confluent_kafka import Message
from prometheus_client import CollectorRegistry

from services.common import schemas, store
from services.common.alerts import Alert, decode_message
from services.common.dead_letters import DeadLetter
from services.common.replay import split_container
from services.common.users import Budget, UserProfile
from services.scorer.app import Scorer
from services.scorer.metrics import ScorerMetrics
from services.scorer.model import ModelSlot, load_model
from services.scorer.settings import ScorerSettings
from tests.faults.broken_models import nan_on_some
from tests.samples import FINK_MULTI, RUBIN_FILE, read_container, write_container


def _messages(payloads: list[bytes]) -> list[Message]:
    return [
        Message(topic="alerts", partition=0, offset=i, key=None, value=p, timestamp=(1, 10**12))
        for i, p in enumerate(payloads)
    ]


@pytest.fixture
def scorer(model_root: Path, redis_client: redis.Redis) -> Scorer:
    store.save_profile(
        redis_client, UserProfile(name="everything", budget=Budget(alerts=1_000_000))
    )
    slot = ModelSlot()
    slot.swap("ztf", load_model(model_root / "ztf" / "ztf-0001"))
    settings = ScorerSettings(model_dir=model_root, metrics_port=0)
    scorer = Scorer(settings, slot, redis_client, ScorerMetrics(CollectorRegistry()), None)
    scorer.refresh_users(force=True)
    return scorer


def _delivered(outputs: list) -> set[str]:
    return {schemas.decode(schemas.USER_ALERT, o.value)["alert_id"] for o in outputs}


def _records(dead: list[DeadLetter]) -> list[tuple[int | None, str, str | None]]:
    return [(p.index, p.reason, p.alert_id) for d in dead for p in d.problems]


def test_one_broken_record_of_the_real_513_kB_fink_packet(scorer: Scorer) -> None:
    """Fink's 11-record, 513 kB packet with record 4's jd at 1e300: one envelope naming record 4
    (it used to be an envelope of the whole packet per broken record, each over 1 MB)."""
    schema, records = read_container(FINK_MULTI)
    records[4]["candidate"]["jd"] = 1e300
    packet = write_container(schema, records, codec="deflate")
    outputs, dead = scorer(_messages([packet]))
    assert len(dead) == 1 and _records(dead) == [(4, "out_of_range", str(records[4]["candid"]))]
    assert _delivered(outputs) == {str(r["candid"]) for i, r in enumerate(records) if i != 4}
    assert all(o.source is not None and o.source.value() == packet for o in outputs)


def test_an_alert_that_breaks_preprocessing_fails_alone(
    scorer: Scorer, ztf_alerts: list[Alert]
) -> None:
    alerts = ztf_alerts[:6]
    bad = dataclasses.replace(alerts[2], cutouts=(np.zeros(5, np.float32),) * 3)
    origins = [(m, 0) for m in _messages([b""] * 6)]
    pipe = scorer.redis.pipeline()
    outputs, dead = scorer._score(
        "ztf", [*alerts[:2], bad, *alerts[3:]], origins, _live(scorer), pipe
    )
    assert [(p.reason, p.alert_id) for d in dead for p in d.problems] == [
        ("scoring_failed", bad.alert_id)
    ]
    assert _delivered(outputs) == {a.alert_id for i, a in enumerate(alerts) if i != 2}
    # Alone in its batch: still its own dead letter (the model runs on its probe stamps), not a
    # crash and a replay of the same batch forever.
    outputs, dead = scorer._score("ztf", [bad], origins[:1], _live(scorer), pipe)
    assert outputs == [] and [p.reason for d in dead for p in d.problems] == ["scoring_failed"]


def test_an_alert_that_fails_encoding_fails_alone(scorer: Scorer, ztf_alerts: list[Alert]) -> None:
    """An alert dated where no Avro long can hold its time (a value the decoder would refuse
    now, but the scorer must not trust that): its record fails to encode; the others go."""
    alerts = ztf_alerts[:5]
    bad = dataclasses.replace(alerts[1], observed_mjd=1e300)
    origins = [(m, 0) for m in _messages([b""] * 5)]
    outputs, dead = scorer._score(
        "ztf", [alerts[0], bad, *alerts[2:]], origins, _live(scorer), scorer.redis.pipeline()
    )
    assert [(p.reason, p.alert_id) for d in dead for p in d.problems] == [
        ("encoding_failed", bad.alert_id)
    ]
    assert _delivered(outputs) == {a.alert_id for i, a in enumerate(alerts) if i != 1}


def test_non_finite_outputs_are_per_alert_dead_letters_and_counted(
    scorer: Scorer, model_root: Path, ztf_payloads: list[bytes], tmp_path: Path
) -> None:
    """A live model (however it got there) that gives NaN for some real alerts: those alerts are
    dead letters, counted by survey, and the others are delivered."""
    live = _live(scorer)
    messages = _messages(ztf_payloads[:40])
    alerts = [r for m in messages for r in decode_message(m.value()) if isinstance(r, Alert)]
    from services.scorer.handler import prepare_stamps

    x = prepare_stamps(alerts, live)
    threshold = float(np.median(x.reshape(len(x), -1).mean(axis=1)))
    bad_dir = nan_on_some(model_root / "ztf" / "ztf-0001", tmp_path / "nan", "ztf-0009", threshold)
    scorer.slot.swap("ztf", load_model(bad_dir))
    outputs, dead = scorer(messages)
    nan_ids = {p.alert_id for d in dead for p in d.problems if p.reason == "non_finite_output"}
    assert 0 < len(nan_ids) < len(alerts)
    assert _delivered(outputs) == {a.alert_id for a in alerts} - nan_ids
    counted = scorer.metrics.registry.get_sample_value(
        "ahunt_scorer_non_finite_outputs_total", {"survey": "ztf"}
    )
    assert counted == len(nan_ids)


def test_a_survey_without_a_model_holds_back_only_its_own_alerts(
    scorer: Scorer, ztf_payloads: list[bytes]
) -> None:
    """Rubin alerts with no Rubin model: each is a dead letter (no_model_for_survey); the ZTF
    alerts of the same batch are delivered (they used to be dead-lettered too)."""
    rubin = split_container(RUBIN_FILE.read_bytes())[:3]
    ztf = [p for p in ztf_payloads if b"topLevelRecord" not in p][:5]
    outputs, dead = scorer(_messages([*ztf[:2], *rubin, *ztf[2:]]))
    assert [p.reason for d in dead for p in d.problems] == ["no_model_for_survey"] * 3
    assert [d.message.offset() for d in dead] == [2, 3, 4]
    ztf_ids = {r.alert_id for p in ztf for r in decode_message(p) if isinstance(r, Alert)}
    assert _delivered(outputs) == ztf_ids


def _live(scorer: Scorer):  # type: ignore[no-untyped-def]
    model = scorer.slot.get("ztf")
    assert model is not None
    return model
