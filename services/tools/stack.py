"""``ahunt up``: the whole stack on one machine, in the foreground.

The parent process owns the infrastructure (the embedded broker and Redis when no endpoint is
configured) and supervises one child process per service, each started exactly as in production
(``ahunt scorer``, ``ahunt feedback``, ``ahunt retrain``) with the endpoints in its environment.
Services therefore share nothing but Kafka and Redis, as on a cluster. Ctrl-C or SIGTERM stops the
children first (each finishes and commits its current batch), then the servers; a child that dies
takes the stack down with a non-zero exit status rather than leaving a half-working system.

Everything that must outlive a restart is under the state directory: Redis's AOF (users, tokens,
labels, the model registry), the model files, and ``secrets.json`` (mode 600: the model signing
key and the Redis users' passwords, generated at the first start). The embedded Redis starts with
one ACL user per service (``services.common.redis_acl``) and each child gets its own; operators
get ``ahunt-admin``'s through ``env.sh``. The embedded broker keeps nothing (docs/SECURITY.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from services.common import redis_acl
from services.common.embedded import EmbeddedKafka, EmbeddedRedis, free_port
from services.common.settings import KafkaSettings, ModelSigningSettings, RedisSettings
from services.common.signing import ModelKeys

log = logging.getLogger("ahunt.up")


@dataclass(frozen=True)
class ServiceSpec:
    """One child service: its ``ahunt`` sub-command, extra environment and readiness URL."""

    name: str
    command: tuple[str, ...]
    env: Mapping[str, str]
    ready_url: str
    endpoint: str  # what to print for people


SECRETS_FILE = "secrets.json"
ENV_FILE = "env.sh"
# The Redis user each service runs as (the scorer's second one reads the registry).
SERVICE_REDIS_USERS = {
    "scorer": {"REDIS_URL": redis_acl.SCORER, "REDIS_REGISTRY_URL": redis_acl.SCORER_REGISTRY},
    "feedback": {"REDIS_URL": redis_acl.FEEDBACK},
    "retrain": {"REDIS_URL": redis_acl.RETRAIN},
}


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by this user only, replacing ``path`` in one rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def state_secrets(state_dir: Path) -> dict[str, Any]:
    """The stack's secrets, generated at its first start and kept: the same signing key after a
    restart (the models published before it still verify) and the same operator credentials."""
    path = state_dir / SECRETS_FILE
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    before = json.dumps(data, sort_keys=True)
    data.setdefault("model_signing_key", secrets.token_hex(32))
    passwords = data.setdefault("redis_passwords", {})
    for role in redis_acl.ROLES:
        passwords.setdefault(role.user, secrets.token_urlsafe(24))
    if json.dumps(data, sort_keys=True) != before:
        _write_private(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return data


@dataclass
class Stack:
    """Infrastructure plus supervised services; a context manager that always cleans up."""

    state_dir: Path
    kafka: str | None = None  # KAFKA_BOOTSTRAP_SERVERS; None starts the embedded broker
    redis_url: str | None = None  # REDIS_URL; None starts the embedded Redis (AOF in state_dir)
    services: Sequence[str] = ("scorer", "feedback", "retrain")
    scorers: int = 1
    extra_env: Mapping[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    specs: list[ServiceSpec] = field(default_factory=list)
    embedded_kafka: bool = False
    signing_key: str | None = None  # AHUNT_MODEL_SIGNING_KEY; None: the state directory's
    redis_users: dict[str, str] = field(default_factory=dict)  # user -> URL (embedded Redis)
    _exit: ExitStack = field(default_factory=ExitStack)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def env(self) -> dict[str, str]:
        """What every child gets: the endpoints, the signing key and the state directories (the
        Redis user comes with each service: :meth:`redis_env`)."""
        assert self.kafka and self.redis_url and self.signing_key
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
            "AHUNT_MODEL_SIGNING_KEY": self.signing_key,
            "AHUNT_SCORER_MODEL_DIR": str(self.state_dir / "models"),
            "AHUNT_RETRAIN_WORK_DIR": str(self.state_dir / "retrain"),
            "AHUNT_RETRAIN_REGISTRY_CACHE_DIR": str(self.state_dir / "retrain-cache"),
        }
        if self.embedded_kafka:  # /readyz tells clients the broker keeps nothing
            env["AHUNT_FEEDBACK_KAFKA_DURABLE"] = "false"
        return {**env, **self.extra_env}

    def redis_env(self, service: str) -> dict[str, str]:
        """The service's own Redis user(s) on the embedded Redis; on a configured one, its URL."""
        assert self.redis_url
        if not self.redis_users:
            return {"REDIS_URL": self.redis_url}
        users = SERVICE_REDIS_USERS[service]
        return {var: self.redis_users[role.user] for var, role in users.items()}

    @property
    def model_keys(self) -> ModelKeys:
        """The keys the services sign and verify with, for in-process publishers (the demo)."""
        assert self.signing_key
        return ModelKeys.from_texts(self.signing_key, [], self.redis_url)

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        kept = state_secrets(self.state_dir)
        self.signing_key = self.signing_key or kept["model_signing_key"]
        if self.kafka is None:
            self.kafka = self._exit.enter_context(EmbeddedKafka()).bootstrap_servers
            self.embedded_kafka = True
        if self.redis_url is None:
            passwords: dict[str, str] = kept["redis_passwords"]
            server = EmbeddedRedis(
                directory=self.state_dir / "redis", aclfile=redis_acl.aclfile(passwords)
            )
            url = self._exit.enter_context(server).url
            self.redis_users = {
                user: redis_acl.with_credentials(url, user, password)
                for user, password in passwords.items()
            }
            self.redis_url = self.redis_users[redis_acl.ADMIN.user]  # the operator's
            self._migrate_keys()
        self._write_env_file()
        self.specs = self._specs()
        for spec in self.specs:
            self._spawn(spec)
        for spec in self.specs:
            self._wait_ready(spec, timeout=120.0)

    def _migrate_keys(self) -> None:
        """A state directory of an older version keeps its labels: rename its keys to this
        version's before any service starts (``ahunt redis migrate``; nothing to do: one scan)."""
        from services.common import store
        from services.tools.redis_migrate import migrate

        assert self.redis_url
        client = store.connect(self.redis_url)
        try:
            moved = migrate(client)
        finally:
            client.close()
        if moved["renamed"] or moved["merged"]:
            log.info("Redis keys moved to this version's names: %s", dict(moved))

    def _write_env_file(self) -> None:
        """``env.sh``: what an operator's shell needs for ``ahunt users``, ``ahunt models``,
        ``ahunt bootstrap`` on this stack (mode 600: it holds ahunt-admin's password)."""
        assert self.kafka and self.redis_url and self.signing_key
        exports = {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
            "REDIS_URL": self.redis_url,
            "AHUNT_MODEL_SIGNING_KEY": self.signing_key,
        }
        lines = [f"export {k}={shlex.quote(v)}" for k, v in exports.items()]
        text = "# ahunt up: this stack's operator environment; `. env.sh` in your shell\n"
        _write_private(self.state_dir / ENV_FILE, text + "\n".join(lines) + "\n")

    def _specs(self) -> list[ServiceSpec]:
        specs: list[ServiceSpec] = []
        for name in self.services:
            if name == "scorer":
                for i in range(self.scorers):
                    port = free_port()
                    specs.append(
                        ServiceSpec(
                            f"scorer-{i + 1}" if self.scorers > 1 else "scorer",
                            ("scorer",),
                            # `ahunt up` starts before anyone has bootstrapped a model
                            {
                                "AHUNT_SCORER_METRICS_PORT": str(port),
                                "AHUNT_SCORER_MODEL_WAIT_S": "0",
                                **self.redis_env("scorer"),
                            },
                            f"http://127.0.0.1:{port}/metrics",
                            f"metrics http://127.0.0.1:{port}/metrics",
                        )
                    )
            elif name == "feedback":
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                specs.append(
                    ServiceSpec(
                        "feedback",
                        ("feedback",),
                        {
                            "AHUNT_FEEDBACK_HOST": "127.0.0.1",
                            "AHUNT_FEEDBACK_PORT": str(port),
                            **self.redis_env("feedback"),
                        },
                        f"{url}/healthz",
                        f"desk {url}/desk  REST API {url}/v1 (docs {url}/docs, metrics "
                        f"{url}/metrics)",
                    )
                )
            elif name == "retrain":
                port = free_port()
                specs.append(
                    ServiceSpec(
                        "retrain",
                        ("retrain",),
                        {"AHUNT_RETRAIN_METRICS_PORT": str(port), **self.redis_env("retrain")},
                        f"http://127.0.0.1:{port}/metrics",
                        f"metrics http://127.0.0.1:{port}/metrics",
                    )
                )
            else:
                raise ValueError(f"unknown service {name!r}")
        return specs

    def _spawn(self, spec: ServiceSpec) -> None:
        env = {**os.environ, **self.env, **spec.env}
        out: int | object = subprocess.DEVNULL
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{spec.name}.log", "ab")  # noqa: SIM115 (lives as long as the child)
        elif log.isEnabledFor(logging.INFO):
            out = None  # inherit the terminal: `ahunt up` shows the services' logs
        self.processes[spec.name] = subprocess.Popen(
            [sys.executable, "-m", "services.cli", *spec.command],
            env=env,
            stdout=out,  # type: ignore[arg-type]
            stderr=subprocess.STDOUT if out is not None else None,
            start_new_session=True,  # Ctrl-C reaches the parent only; it stops children in order
        )

    def _wait_ready(self, spec: ServiceSpec, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        process = self.processes[spec.name]
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{spec.name} exited with status {process.returncode}")
            try:
                with urllib.request.urlopen(spec.ready_url, timeout=1.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{spec.name} not ready at {spec.ready_url} after {timeout:.0f} s")

    def failed(self) -> str | None:
        """The name of a child that has exited, if any."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                return f"{name} (status {process.returncode})"
        return None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every child, wait, SIGKILL stragglers, then stop the servers."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        self._exit.close()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state", type=Path, default=Path("var/ahunt-up"), help="state directory")
    p.add_argument("--scorers", type=int, default=1, help="scorer processes (one group)")
    p.add_argument(
        "--only",
        nargs="+",
        choices=("scorer", "feedback", "retrain"),
        default=("scorer", "feedback", "retrain"),
        help="services to run",
    )


def main(args: argparse.Namespace) -> int:
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    configured_key = ModelSigningSettings().signing_key
    stack = Stack(
        state_dir=args.state,
        kafka=KafkaSettings().bootstrap_servers,
        redis_url=RedisSettings().url,
        services=args.only,
        scorers=args.scorers,
        signing_key=configured_key.get_secret_value() if configured_key else None,
    )
    with stack:
        print(f"\nahunt-broker is up (state in {args.state}):", flush=True)
        print(f"  Kafka  {stack.kafka}    (alerts in: ahunt.alerts; users: ahunt.user.<name>)")
        if stack.embedded_kafka:
            print(
                "         embedded broker: MEMORY ONLY (topics are lost when it stops), loopback "
                "only, no authentication or ACLs: anyone on this machine can read every user's "
                "topic (docs/SECURITY.md)"
            )
        print(f"  Redis  {redis_acl.redacted(stack.redis_url or '')}")
        if stack.redis_users:
            print(
                "         AOF in the state directory; one ACL user per service: only retrain "
                "and ahunt-admin can write the model registry"
            )
        for spec in stack.specs:
            print(f"  {spec.name:<9}{spec.endpoint}")
        print(
            "Next: `ahunt users add NAME` (its token signs in at the desk), "
            "`ahunt bootstrap --survey ztf --from FILES`, "
            "`ahunt replay FILES --topic ahunt.alerts`, `ahunt subscribe --user NAME`.\n"
            f"(First `. {args.state / ENV_FILE}` in the shell you use: the endpoints, the "
            "operator's Redis user, the model signing key.) Ctrl-C stops everything.",
            flush=True,
        )
        try:
            while not done.wait(0.5):
                dead = stack.failed()
                if dead:
                    log.error("%s stopped: taking the stack down", dead)
                    return 1
        except KeyboardInterrupt:
            pass
    print("stopped", flush=True)
    return 0
