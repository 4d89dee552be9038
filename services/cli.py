"""The `ahunt` command: one entry point, one sub-command per service or tool.

A sub-command is a :class:`Command`: its name, its help line and the module that implements it
(``add_arguments(parser)`` and ``main(args) -> exit status``, or the functions it names). The
module is imported only when its sub-command is parsed, so ``ahunt --help`` imports none of them
and ``ahunt scorer`` imports the scorer alone: a serving install without torch runs every command
that does not need it, and says what is missing for the others.

Benchmarks are not part of the services: ``bench/commands.py`` registers them (``EXTENSIONS``),
and only when that package is installed (the serving image ships no ``bench/``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Command:
    """A sub-command whose ``module`` is imported when the sub-command is parsed."""

    name: str
    help: str
    module: str
    add_arguments: str = "add_arguments"
    main: str = "main"  # "" for a group whose own sub-commands set what runs
    # Logging of the process (services.common.logs.setup); None: Python's default (warnings).
    log_level: str | None = None


COMMANDS: tuple[Command, ...] = (
    # The services (settings from the environment; services/<name>/cli.py).
    Command(
        "scorer",
        "run the scoring service (settings from the environment)",
        "services.scorer.cli",
        log_level="INFO",
    ),
    Command(
        "feedback",
        "run the feedback API (settings from the environment)",
        "services.feedback.cli",
        log_level="INFO",
    ),
    Command(
        "retrain",
        "fine-tune on new labels, gate and publish (a loop, or once with --now)",
        "services.retrain.cli",
        log_level="INFO",
    ),
    # Operating them.
    Command(
        "bootstrap",
        "train, publish and promote a survey's first model from alert packets",
        "services.retrain.cli",
        "add_bootstrap_arguments",
        "bootstrap_main",
        log_level="INFO",
    ),
    Command(
        "models",
        "the model registry: list, show, publish, promote, rollback",
        "services.common.registry.cli",
    ),
    Command(
        "users",
        "feedback API users and their tokens (needs REDIS_URL)",
        "services.feedback.cli",
        "add_users_arguments",
        "users_main",
    ),
    Command(
        "kafka-acls",
        "the services' Kafka credentials and ACLs (a deployment's setup job)",
        "services.tools.access",
        "add_kafka_arguments",
        "kafka_main",
    ),
    Command(
        "redis-acls",
        "the services' Redis ACL users: show, write an aclfile, apply",
        "services.tools.access",
        "add_redis_arguments",
        "redis_main",
    ),
    Command(
        "redis",
        "Redis data: migrate an existing deployment's keys to this version's names",
        "services.tools.redis_migrate",
    ),
    # Tools (services/tools/): alerts in and out, the stack on one machine, the demo.
    Command("decode", "decode alert packets, one JSON line per record", "services.tools.decode"),
    Command("replay", "publish alert files to Kafka", "services.tools.replay"),
    Command("subscribe", "read a user's alert topic", "services.tools.subscribe"),
    Command("dlq", "dead letters: fetch the whole original of one", "services.tools.dead_letters"),
    Command("kafka", "run the embedded Kafka-protocol broker", "services.tools.kafka"),
    Command(
        "up",
        "run the whole stack on this machine (embedded defaults)",
        "services.tools.stack",
        log_level="INFO",
    ),
    Command(
        "simulate",
        "write a simulated ZTF survey: Avro alerts, truth.csv, broken packets",
        "services.tools.simulator.cli",
    ),
    Command(
        "demo",
        "the whole product live: simulate, score, label, retrain",
        "services.tools.demo.cli",
        log_level="WARNING",
    ),
    Command(
        "oracle",
        "play a user: label your topic's alerts from a truth file",
        "services.tools.demo.oracle",
        log_level="INFO",
    ),
)
# Packages that add commands of their own (a module with a ``COMMANDS`` tuple), when installed.
EXTENSIONS: tuple[str, ...] = ("bench.commands",)


class LazyParser(argparse.ArgumentParser):
    """A sub-command's parser that imports its module and adds its arguments on first use
    (parsing or help), so building the whole ``ahunt`` parser imports nothing."""

    def __init__(self, *args: Any, command: Command | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)
        self._command = command

    def _load(self) -> None:
        command, self._command = self._command, None
        if command is None:
            return
        try:
            module = importlib.import_module(command.module)
        except ImportError as exc:  # e.g. the serving image has no torch: say so when used
            missing = exc.name or str(exc)
            self.exit(2, f"{self.prog}: needs {missing}, which is not installed ({exc})\n")
        getattr(module, command.add_arguments)(self)
        if command.main:
            self.set_defaults(run=getattr(module, command.main), log_level=command.log_level)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._load()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._load()
        return super().format_help()


def add_commands(
    parser: argparse.ArgumentParser, commands: Iterable[Command], dest: str = "command"
) -> argparse._SubParsersAction[LazyParser]:
    """Register ``commands`` as lazily loaded sub-commands of ``parser``."""
    subparsers = parser.add_subparsers(dest=dest, required=True, parser_class=LazyParser)
    for command in commands:
        subparsers.add_parser(command.name, help=command.help, command=command)
    return subparsers


def extension_commands() -> list[Command]:
    """The commands of the :data:`EXTENSIONS` whose package is installed."""
    found: list[Command] = []
    for name in EXTENSIONS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name not in (name, name.split(".", 1)[0]):  # there, but broken: say so
                raise
            continue
        found.extend(module.COMMANDS)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ahunt",
        description="ahunt-broker: personalised anomaly detection for astronomical alert streams",
    )
    add_commands(parser, [*COMMANDS, *extension_commands()])
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    level = getattr(args, "log_level", None)
    if level is not None:
        from services.common import logs

        logs.setup(level)
    run: Callable[[argparse.Namespace], int] = args.run
    return int(run(args))


def run_command(name: str) -> int:
    """``python -m services.<name>``: the same as ``ahunt <name> ARGS``."""
    return main([name, *sys.argv[1:]])


if __name__ == "__main__":
    raise SystemExit(main())
