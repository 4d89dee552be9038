"""Group commit (services.feedback.batching) on a real Redis: concurrent requests share round
trips, each gets exactly its own replies, and one request's failing command fails only it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from services.common import labels, store
from services.common.embedded import EmbeddedRedis
from services.common.labels import LabelRecord
from services.common.users import UserProfile
from services.feedback import storage
from services.feedback.batching import RedisBatcher
from services.feedback.handler import apply_answer, feedback_event
from tests.integration.test_feedback_support import seed_alert


def test_concurrent_requests_share_round_trips_and_keep_their_replies(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    redis_client.set("not-a-hash", "x")

    async def scenario() -> tuple[list[Any], RedisBatcher]:
        client = Redis.from_url(redis_server.url)
        batcher = RedisBatcher(client, parallel=2)

        async def request(i: int) -> Any:
            if i == 13:  # a command Redis refuses inside the shared transaction
                return await batcher.transaction(lambda p: p.hset("not-a-hash", "f", "v"))

            def queue(pipe: Any) -> None:
                pipe.hset(f"h{i}", "n", i)
                pipe.incr("counter")
                pipe.hget(f"h{i}", "n")

            return await batcher.transaction(queue)

        results = await asyncio.gather(*(request(i) for i in range(50)), return_exceptions=True)

        def read(i: int) -> Any:
            return batcher.read(lambda p: p.hget(f"h{i}", "n"))

        reads = await asyncio.gather(*(read(i) for i in range(50)))
        await client.aclose()
        return [*results, reads], batcher

    (*results, reads), batcher = asyncio.run(scenario())
    assert isinstance(results[13], ResponseError)
    for i, r in enumerate(results):
        if i != 13:
            assert r[0] == 1 and r[2] == str(i).encode()
    assert sorted(r[1] for i, r in enumerate(results) if i != 13) == list(range(1, 50))
    assert redis_client.get("counter") == b"49"  # the failed request's group still committed
    assert [r[0] for r in reads[:13]] == [str(i).encode() for i in range(13)]
    assert reads[13] == [None]
    assert batcher.writes.requests == 50 and batcher.writes.groups < 50  # shared round trips
    assert batcher.reads.groups < 50


def test_a_lost_connection_fails_every_request_of_the_group(tmp_path: Any) -> None:
    server = EmbeddedRedis(directory=tmp_path)
    server.start()
    client = Redis.from_url(server.url, socket_connect_timeout=1)
    batcher = RedisBatcher(client)
    server.stop()

    async def scenario() -> list[Any]:
        jobs = [batcher.transaction(lambda p: p.incr("x")) for _ in range(5)]
        out = await asyncio.gather(*jobs, return_exceptions=True)
        await client.aclose()
        return out

    results = asyncio.run(scenario())
    assert all(isinstance(r, redis.exceptions.ConnectionError) for r in results)
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis.from_url(server.url).ping()


def test_answer_is_reapplied_when_the_profile_changed_meanwhile(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    """The label commits with a compare-and-set of the profile read beforehand; if another
    request changed the profile in between, the answer is applied again to the new one."""
    store.save_profile(redis_client, UserProfile(name="ann", weights={"agn": 0.5}))
    seed_alert(redis_client, "7")

    async def scenario() -> storage.Committed:
        client = Redis.from_url(redis_server.url)
        batcher = RedisBatcher(client)
        target, profile = await storage.read_for_label(batcher, "ann", "7")
        assert target is not None and profile is not None
        # Meanwhile the user edits their interest (PUT /v1/me/interest).
        store.save_profile(redis_client, UserProfile(name="ann", weights={"lens": 3.0}))
        record = LabelRecord(user="ann", alert_id="7", label="sn", interesting=True)
        committed = await storage.commit_label(
            batcher,
            record,
            target,
            feedback_event("label", record),
            lambda p: apply_answer(p, "sn", True),
            profile,
        )
        await client.aclose()
        return committed

    committed = asyncio.run(scenario())
    assert committed.created and committed.profile is not None
    stored = {p.name: p for p in store.load_profiles(redis_client)}["ann"]
    assert stored.weights == {"lens": 3.0, "sn": 1.0}  # the edit kept, the answer applied
    assert labels.get_label(redis_client, "ann", "7") is not None
