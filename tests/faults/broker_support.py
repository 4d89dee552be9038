"""A local S3-compatible server for Tansu's durable storage engine: moto's server mode (a dev
dependency) on a loopback port, holding its buckets in its own memory, so the broker can be
killed and restarted while its data lives on."""

from __future__ import annotations

import sys
import urllib.request
import uuid
from dataclasses import dataclass, field
from subprocess import Popen

from services.common.embedded import (
    EmbeddedKafka,
    _ServerContext,
    free_port,
    start_server,
    stop_server,
)


@dataclass
class LocalS3(_ServerContext):
    host: str = "127.0.0.1"
    port: int = 0
    process: Popen[bytes] | None = field(default=None, init=False)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> LocalS3:
        self.port = self.port or free_port(self.host)
        self.process = start_server(
            [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
            self.host,
            self.port,
            timeout,
        )
        return self

    def stop(self) -> None:
        stop_server(self.process, 5)
        self.process = None

    def bucket(self) -> str:
        """A new empty bucket's name (moto takes unsigned requests)."""
        name = f"tansu-{uuid.uuid4().hex[:12]}"
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200, answer.status
        return name

    def broker(self) -> EmbeddedKafka:
        """A Tansu broker (not started) keeping everything in a new bucket of this server."""
        return EmbeddedKafka(
            storage_engine=f"s3://{self.bucket()}/",
            env={
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_DEFAULT_REGION": "eu-west-2",
                "AWS_ENDPOINT": self.endpoint,
                "AWS_ALLOW_HTTP": "true",
            },
        )
