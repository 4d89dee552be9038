"""Group commit: the Redis work of concurrent requests shares round trips.

Each request queues its commands with a callback; everything queued while the event loop was
busy goes out as one pipeline (reads) or one MULTI/EXEC (writes), and each request gets back the
replies of its own commands. A transaction then holds several requests' writes: each is still
all-or-nothing (the group is), and durable when EXEC answers (Redis fsyncs before replying under
``appendfsync always``), so nothing about acknowledgement changes; what changes is that the
client-side cost of a round trip (about as much as 5-6 commands in redis-py's asyncio client) is
paid once per group instead of once per request. Under light load a group is one request.

A command that fails inside a group fails only the request that queued it; a connection error
fails every request of the group (they answer 503 and may retry).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

# Queues commands on a pipeline (what a queued command returns is not awaited: ignored).
Queue = Callable[[Pipeline], object]


class _Lane:
    """Requests waiting for one kind of round trip; at most ``parallel`` groups in flight."""

    def __init__(self, redis: Redis, transaction: bool, parallel: int, max_group: int) -> None:
        self.redis, self.transaction = redis, transaction
        self.parallel, self.max_group = parallel, max_group
        self.waiting: list[tuple[Queue, asyncio.Future[list[Any]]]] = []
        self.in_flight = 0  # senders running (or about to)
        self.scheduled = False  # a sender will start on the next loop iteration
        self.groups = 0
        self.requests = 0

    async def submit(self, queue: Queue) -> list[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        self.waiting.append((queue, future))
        if not self.scheduled and self.in_flight < self.parallel:
            # Started on the next loop iteration, so requests arriving in this one join it;
            # while groups are in flight, new requests wait for the next free sender.
            self.scheduled = True
            self.in_flight += 1
            loop.call_soon(self._start)
        return await future

    def _start(self) -> None:
        self.scheduled = False
        asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while self.waiting:
                group, self.waiting = (
                    self.waiting[: self.max_group],
                    self.waiting[self.max_group :],
                )
                await self._send(group)
        finally:
            self.in_flight -= 1

    async def _send(self, group: list[tuple[Queue, asyncio.Future[list[Any]]]]) -> None:
        pipe = self.redis.pipeline(transaction=self.transaction)
        spans: list[tuple[int, int]] = []
        try:
            for queue, _ in group:
                start = len(pipe.command_stack)
                queue(pipe)
                spans.append((start, len(pipe.command_stack)))
            replies = await pipe.execute(raise_on_error=False)
        except BaseException as exc:
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        self.groups += 1
        self.requests += len(group)
        for (start, end), (_, future) in zip(spans, group, strict=True):
            mine = replies[start:end]
            error = next((r for r in mine if isinstance(r, Exception)), None)
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(mine)


class RedisBatcher:
    """Shared round trips for reads (plain pipeline) and writes (MULTI/EXEC)."""

    def __init__(self, redis: Redis, parallel: int = 4, max_group: int = 256) -> None:
        self.reads = _Lane(redis, False, parallel, max_group)
        self.writes = _Lane(redis, True, parallel, max_group)

    async def read(self, queue: Queue) -> list[Any]:
        return await self.reads.submit(queue)

    async def transaction(self, queue: Queue) -> list[Any]:
        return await self.writes.submit(queue)
