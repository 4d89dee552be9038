"""``ahunt up``: the whole stack on one machine, in the foreground.

The parent process owns the infrastructure (the embedded broker and Redis when no endpoint is
configured) and supervises one child process per service, each started exactly as in production
(``ahunt scorer``, ``ahunt feedback``, ``ahunt retrain``) with the endpoints in its environment.
Services therefore share nothing but Kafka and Redis, as on a cluster. Ctrl-C or SIGTERM stops the
children first (each finishes and commits its current batch), then the servers; a child that dies
takes the stack down with a non-zero exit status rather than leaving a half-working system.
"""

from __future__ import annotations

import argparse
import logging
import os
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
from typing import Self

from services.common.embedded import EmbeddedKafka, EmbeddedRedis, free_port
from services.common.settings import KafkaSettings, RedisSettings

log = logging.getLogger("ahunt.up")


@dataclass(frozen=True)
class ServiceSpec:
    """One child service: its ``ahunt`` sub-command, extra environment and readiness URL."""

    name: str
    command: tuple[str, ...]
    env: Mapping[str, str]
    ready_url: str
    endpoint: str  # what to print for people


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
        """What every child gets: the endpoints and the shared state directories."""
        assert self.kafka and self.redis_url
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
            "REDIS_URL": self.redis_url,
            "AHUNT_SCORER_MODEL_DIR": str(self.state_dir / "models"),
        }
        if self.embedded_kafka:  # /readyz tells clients the broker keeps nothing
            env["AHUNT_FEEDBACK_KAFKA_DURABLE"] = "false"
        return {**env, **self.extra_env}

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.kafka is None:
            self.kafka = self._exit.enter_context(EmbeddedKafka()).bootstrap_servers
            self.embedded_kafka = True
        if self.redis_url is None:
            redis_dir = self.state_dir / "redis"
            self.redis_url = self._exit.enter_context(EmbeddedRedis(directory=redis_dir)).url
        self.specs = self._specs()
        for spec in self.specs:
            self._spawn(spec)
        for spec in self.specs:
            self._wait_ready(spec, timeout=120.0)

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
                        {"AHUNT_FEEDBACK_HOST": "127.0.0.1", "AHUNT_FEEDBACK_PORT": str(port)},
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
                        {"AHUNT_RETRAIN_METRICS_PORT": str(port)},
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
    stack = Stack(
        state_dir=args.state,
        kafka=KafkaSettings().bootstrap_servers,
        redis_url=RedisSettings().url,
        services=args.only,
        scorers=args.scorers,
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
        print(f"  Redis  {stack.redis_url}")
        for spec in stack.specs:
            print(f"  {spec.name:<9}{spec.endpoint}")
        print(
            "Next: `ahunt users add NAME` (its token signs in at the desk), "
            "`ahunt bootstrap --survey ztf --from FILES`, "
            "`ahunt replay FILES --topic ahunt.alerts`, `ahunt subscribe --user NAME`.\n"
            "(Set KAFKA_BOOTSTRAP_SERVERS and REDIS_URL to these in the shell you use.) "
            "Ctrl-C stops everything.",
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
