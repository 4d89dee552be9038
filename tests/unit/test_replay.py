"""Replay turns files into one-alert messages and never drops or judges a packet."""

from __future__ import annotations

import io

import fastavro
import numpy as np

from services.common.alerts import Alert, Rejected, decode_message
from services.common.replay import split_container
from services.tools.simulator import SimulationConfig, simulate_night


def _packets(n: int) -> list[bytes]:
    return [a.packet for a in simulate_night(SimulationConfig(), 1, n, np.random.default_rng(0))]


def test_multi_record_container_splits_into_single_record_messages() -> None:
    packets = _packets(3)
    schema = fastavro.reader(io.BytesIO(packets[0])).writer_schema
    records = [next(iter(fastavro.reader(io.BytesIO(p)))) for p in packets]
    buf = io.BytesIO()
    fastavro.writer(buf, schema, records)
    parts = split_container(buf.getvalue())
    assert len(parts) == 3
    ids = [r.alert_id for p in parts for r in decode_message(p) if isinstance(r, Alert)]
    assert ids == [str(r["candid"]) for r in records]


def test_a_single_record_or_unreadable_container_is_sent_unchanged() -> None:
    [packet] = _packets(1)
    assert split_container(packet) == [packet]
    truncated = packet[: len(packet) // 2]
    assert split_container(truncated) == [truncated]  # the scorer dead-letters it
    [rejected] = decode_message(truncated)
    assert isinstance(rejected, Rejected) and rejected.reason == "truncated"
