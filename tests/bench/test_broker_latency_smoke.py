"""`python -m bench.broker_latency` on the real broker: every message relayed, timings recorded."""

from __future__ import annotations

from bench.broker_latency import measure


def test_the_relay_delivers_and_commits_every_message_and_times_each_round_trip(
    kafka_bootstrap: str,
) -> None:
    result = measure(kafka_bootstrap, rate=100, seconds=1.0, size=1_000, partitions=2)
    assert result["sent"] > 100 and result["committed"] == result["sent"]
    latency = result["latency_send_to_commit"]
    assert latency["n"] > 50 and 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert result["stages"]["produce"]["n"] == result["stages"]["commit"]["n"] > 0
