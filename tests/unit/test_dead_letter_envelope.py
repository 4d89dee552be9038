"""The dead-letter envelope (version 2): bounded whatever the input, one per input message."""

from __future__ import annotations

import hashlib
import json

from confluent_kafka import Message

from services.common.dead_letters import (
    ENVELOPE_VERSION,
    MAX_RECORDS,
    DeadLetter,
    Kept,
    Problem,
    envelope,
    merge,
)


def _message(value: bytes, offset: int = 7) -> Message:
    return Message(topic="ahunt.alerts", partition=1, offset=offset, key=b"k", value=value)


def test_an_envelope_is_bounded_whatever_the_input() -> None:
    """A 10 MB input (what `ahunt replay` may send) gives an envelope of a few kB: the sha256,
    the size and a 4 kB prefix of the original, never the whole (it used to be all of it, in
    hex: 20 MB, which no broker takes)."""
    payload = bytes(range(256)) * 40_000  # 10.24 MB
    letter = DeadLetter.of(_message(payload), "bad_magic", "x" * 50_000)
    value, headers = envelope(letter, "scorer", "ztf:ztf-0001", Kept("redis", 1.0), 4096)
    assert len(value) < 16_000
    body = json.loads(value)
    assert body["envelope_version"] == ENVELOPE_VERSION == 2
    original = body["original"]
    assert original["sha256"] == hashlib.sha256(payload).hexdigest()
    assert original["size"] == len(payload) and original["kept"] == "redis"
    assert bytes.fromhex(original["prefix"]) == payload[:4096]
    assert len(body["error"]) <= 1000 and body["source"] == {
        "topic": "ahunt.alerts",
        "partition": 1,
        "offset": 7,
    }
    assert dict(headers)["ahunt-dlq-version"] == b"2"
    assert dict(headers)["ahunt-dlq-reason"] == b"bad_magic"


def test_one_envelope_per_message_lists_each_broken_record() -> None:
    """Three broken records of one multi-record packet: one envelope with the three indexes and
    reasons, not three copies of the packet."""
    packet, other = _message(b"Obj\x01 three records", 3), _message(b"garbage", 4)
    letters = merge(
        [
            DeadLetter(packet, (Problem("out_of_range", "candidate.jd = 1e300", 0, "1"),)),
            DeadLetter.of(other, "bad_magic", "not an alert"),
            DeadLetter(packet, (Problem("not_fits", "a JPEG", 2, "3"),)),
            DeadLetter(packet, (Problem("non_finite_output", "NaN", 5, "6", "ScoringError"),)),
        ]
    )
    assert [letter.source[2] for letter in letters] == [3, 4]
    body = json.loads(envelope(letters[0], "scorer", None, Kept("redis"), 64)[0])
    assert [(r["index"], r["reason"]) for r in body["records"]] == [
        (0, "out_of_range"),
        (2, "not_fits"),
        (5, "non_finite_output"),
    ]
    assert body["reason"] == "out_of_range" and body["records_omitted"] == 0


def test_the_minimal_form_keeps_what_finds_the_original() -> None:
    problems = tuple(Problem("corrupt_cutout", "bad CRC " * 100, i) for i in range(MAX_RECORDS + 5))
    letter = DeadLetter(_message(b"\x00" * 700_000), problems)
    full = json.loads(envelope(letter, "scorer", None, Kept("store_full"), 4096)[0])
    assert len(full["records"]) == MAX_RECORDS and full["records_omitted"] == 5
    value, _ = envelope(letter, "scorer", None, Kept("store_full"), 4096, minimal=True)
    body = json.loads(value)
    assert body["minimal"] is True and "prefix" not in body["original"]
    assert body["original"]["kept"] == "store_full" and body["source"]["offset"] == 7
    assert body["records"] == [] and body["records_omitted"] == MAX_RECORDS + 5
    assert body["reason"] == "corrupt_cutout" and len(value) < 1_000
