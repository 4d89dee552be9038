"""Running the feedback API: standalone (``ahunt feedback``) or in a thread of another process.

In-process, e.g. inside ``ahunt up``/``ahunt demo``::

    from services.feedback.app import create_app
    from services.feedback.serve import redis_client, serve_in_thread
    from services.feedback.settings import FeedbackSettings
    from services.common.kafka import ensure_topics, producer

    settings = FeedbackSettings()
    ensure_topics(kafka_settings, bootstrap, [settings.events_topic])
    app = create_app(
        settings, redis_client(redis_url, settings), producer(kafka_settings, bootstrap)
    )
    api = serve_in_thread(app, port=8080)      # returns once it listens; api.url
    ...
    api.stop()                                 # drains the event outbox, closes the pool

Several workers (``AHUNT_FEEDBACK_WORKERS``) are separate processes: each builds its clients
from the environment in :func:`app_from_env`.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from services.common import keys, store
from services.common.embedded import EmbeddedRedis
from services.common.infra import endpoints
from services.common.kafka import ensure_topics, producer
from services.common.redis_acl import redacted
from services.common.settings import KafkaSettings, RedisSettings
from services.feedback.app import create_app
from services.feedback.settings import FeedbackSettings
from services.feedback.stream import KafkaSource, StreamClosingServer
from services.feedback.tokens import add_user

log = logging.getLogger("ahunt.feedback")


def redis_client(url: str, settings: FeedbackSettings) -> Redis:
    """The API's asyncio client: one immediate retry (a connection dropped by a Redis restart),
    then the error surfaces as 503 instead of keeping the request waiting."""
    return Redis.from_url(
        url,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=min(2.0, settings.redis_timeout_s),
        retry=Retry(NoBackoff(), 1),
    )


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes (``REDIS_URL`` must be set: the parent sets it)."""
    settings, kafka, redis_url = FeedbackSettings(), KafkaSettings(), RedisSettings().url
    if not redis_url:
        raise RuntimeError("REDIS_URL is not set")
    bootstrap = kafka.bootstrap_servers
    kafka_producer = producer(kafka, bootstrap) if bootstrap else None
    source = KafkaSource(kafka, bootstrap) if bootstrap else None
    return create_app(
        settings,
        redis_client(redis_url, settings),
        kafka_producer,
        kafka=source,
        new_producer=(lambda: producer(kafka, bootstrap)) if bootstrap else None,
    )


def run(settings: FeedbackSettings | None = None, users: Sequence[str] = ()) -> int:
    """Serve until Ctrl-C/SIGTERM; embedded Redis and broker for endpoints left unset."""
    settings = settings or FeedbackSettings()
    kafka = KafkaSettings()
    with ExitStack() as stack:
        if threading.current_thread() is threading.main_thread():
            # uvicorn shuts down gracefully on SIGTERM, then re-raises it; exiting by an exception
            # (not by the default handler) lets this stack stop the embedded servers.
            previous = signal.signal(signal.SIGTERM, _exit_cleanly)
            stack.callback(signal.signal, signal.SIGTERM, previous)
        redis_url = RedisSettings().url
        if redis_url is None and settings.embedded_redis_dir is not None:
            embedded = stack.enter_context(EmbeddedRedis(directory=settings.embedded_redis_dir))
            redis_url = embedded.url
            log.warning(
                "REDIS_URL not set: embedded Redis at %s, data in %s",
                redis_url,
                settings.embedded_redis_dir,
            )
        ep = stack.enter_context(endpoints(kafka.bootstrap_servers, redis_url))
        if redis_url is None:
            log.warning(
                "labels live in a temporary embedded Redis (lost at exit): set REDIS_URL "
                "or AHUNT_FEEDBACK_EMBEDDED_REDIS_DIR to keep them"
            )
        ensure_topics(kafka, ep.kafka, [settings.events_topic])
        if users:
            admin = store.connect(ep.redis)
            for name in users:
                if admin.hexists(keys.USERS, name):
                    print(f"user {name} exists (ahunt users add {name} --rotate for a new token)")
                else:
                    print(f"user {name}: token {add_user(admin, name)}", flush=True)
            admin.close()
        print(
            f"feedback API on http://{settings.host}:{settings.port} (docs at /docs); "
            f"REDIS_URL={redacted(ep.redis)} KAFKA_BOOTSTRAP_SERVERS={ep.kafka}",
            flush=True,
        )
        common = {
            "host": settings.host,
            "port": settings.port,
            "log_level": settings.log_level,
            "access_log": settings.access_log,
            "lifespan": "on",  # a failed startup (e.g. Redis not durable and required) exits
        }
        if settings.workers == 1:
            app = create_app(
                settings,
                redis_client(ep.redis, settings),
                producer(kafka, ep.kafka),
                kafka=KafkaSource(kafka, ep.kafka),
                new_producer=lambda: producer(kafka, ep.kafka),
            )
            server = StreamClosingServer(uvicorn.Config(app, **common))  # type: ignore[arg-type]
            server.run()
            if not server.started:
                return 3  # startup failed (uvicorn's own exit status for that)
        else:
            os.environ["REDIS_URL"], os.environ["KAFKA_BOOTSTRAP_SERVERS"] = ep.redis, ep.kafka
            uvicorn.run(
                "services.feedback.serve:app_from_env",
                factory=True,
                workers=settings.workers,
                timeout_graceful_shutdown=10,  # worker processes: live streams end by this
                **common,  # type: ignore[arg-type]
            )
    return 0


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


@dataclass
class ThreadedServer:
    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful: finishes requests in flight, runs the app's shutdown (outbox drain)."""
        self.server.should_exit = True
        self.thread.join(timeout)


def serve_in_thread(
    app: FastAPI,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log_level: str = "warning",
    timeout: float = 30.0,
) -> ThreadedServer:
    """Start uvicorn for ``app`` in a daemon thread (its own event loop) and return once it
    listens; ``port=0`` picks a free one. Raises if the app fails to start."""
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, access_log=False, lifespan="on"
    )
    server = StreamClosingServer(config)
    thread = threading.Thread(target=server.run, name="feedback-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the feedback API did not start (see its log)")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
    return ThreadedServer(server, thread, host, int(bound))
