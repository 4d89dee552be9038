"""Endpoints for a service: the configured ones, or embedded servers started for this process."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from services.common.embedded import EmbeddedKafka, EmbeddedRedis

log = logging.getLogger("ahunt.infra")


@dataclass(frozen=True)
class Endpoints:
    kafka: str
    redis: str


@contextmanager
def endpoints(kafka: str | None, redis_url: str | None) -> Iterator[Endpoints]:
    """Yield usable endpoints; embedded servers are started for the unset ones and stopped after."""
    with ExitStack() as stack:
        if kafka is None:
            broker = stack.enter_context(EmbeddedKafka())
            kafka = broker.bootstrap_servers
            log.warning("KAFKA_BOOTSTRAP_SERVERS not set: embedded broker at %s", kafka)
        if redis_url is None:
            server = stack.enter_context(EmbeddedRedis())
            redis_url = server.url
            log.warning("REDIS_URL not set: embedded Redis at %s", redis_url)
        yield Endpoints(kafka, redis_url)
