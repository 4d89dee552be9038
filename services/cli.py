"""The `ahunt` command: one entry point, one sub-command per service or tool."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

# Sub-commands that live beside their service: each module has ``COMMANDS``, a dict of
# name -> (help, add_arguments(parser), main(args) -> exit status). Imported lazily at parse time
# so that a serving install without torch can still run the commands that do not need it.
COMMAND_MODULES: tuple[str, ...] = (
    "services.common.registry_cli",
    "services.retrain.cli",
    "services.feedback.cli",
    "services.simulator.cli",
    "services.stack",
    "services.demo.oracle",
    "services.demo.run",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ahunt",
        description="ahunt-broker: personalised anomaly detection for astronomical alert streams",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    bench = commands.add_parser("bench", help="benchmarks")
    benches = bench.add_subparsers(dest="bench", required=True)
    # Its options come from the learning code (losses, augmentations, methods), which needs torch
    # and scikit-learn: parsed in a second step so that no other command pays for those imports.
    benches.add_parser(
        "paper", help="reproduce the AHUNT paper's protocol on digits or MNIST", add_help=False
    ).set_defaults(deferred=_parse_paper)

    throughput = benches.add_parser(
        "throughput",
        help="the scorer through a real broker, with stage ceilings",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    from bench.throughput import add_arguments as throughput_arguments

    throughput_arguments(throughput)

    from services.decode_cli import add_arguments as decode_arguments

    decode = commands.add_parser("decode", help="decode alert packets, one JSON line per record")
    decode_arguments(decode)

    kafka = commands.add_parser("kafka", help="run the embedded Kafka-protocol broker")
    kafka.add_argument("--port", type=int, default=9092)
    kafka.add_argument("--host", default="127.0.0.1")

    commands.add_parser("scorer", help="run the scoring service (settings from the environment)")

    from services.clients import add_replay_arguments, add_subscribe_arguments

    add_replay_arguments(commands.add_parser("replay", help="publish alert files to Kafka"))
    add_subscribe_arguments(commands.add_parser("subscribe", help="read a user's alert topic"))
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # e.g. the serving image has no torch: say so when used
            name = module_name.rsplit(".", 2)[-2 if module_name.endswith(".cli") else -1]
            sub = commands.add_parser(name, help=f"(unavailable: {exc.name} not installed)")
            sub.set_defaults(unavailable=f"needs {exc.name} ({exc})")
            continue
        for name, (help_text, add_arguments, run) in module.COMMANDS.items():
            sub = commands.add_parser(
                name, help=help_text, formatter_class=argparse.ArgumentDefaultsHelpFormatter
            )
            add_arguments(sub)
            sub.set_defaults(run=run)
    return parser


def run_kafka(host: str, port: int) -> int:
    """The embedded broker in the foreground until Ctrl-C or SIGTERM."""
    import signal
    import threading

    from services.common.embedded import EmbeddedKafka

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with EmbeddedKafka(port=port, host=host) as broker:
        print(
            f"Kafka-protocol broker (Tansu, memory storage) at {broker.bootstrap_servers}; "
            "Ctrl-C stops it",
            flush=True,
        )
        try:
            while not done.wait(0.5) and broker.process and broker.process.poll() is None:
                pass
        except KeyboardInterrupt:
            pass
    return 0


def _parse_paper(rest: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ahunt bench paper",
        description="reproduce the AHUNT paper's protocol on digits or MNIST",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    try:  # the serving install (scorer, feedback) has no torch: keep the command, explain it
        from bench.paper.cli import add_arguments
    except ImportError as exc:
        raise SystemExit(f"ahunt bench paper: needs the train and bench extras ({exc})") from exc
    add_arguments(parser)
    return parser.parse_args(rest, argparse.Namespace(command="bench", bench="paper"))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    deferred = getattr(args, "deferred", None)
    if deferred is not None:
        return deferred(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if getattr(args, "unavailable", None):
        raise SystemExit(f"ahunt {args.command}: {args.unavailable}")
    if getattr(args, "run", None) is not None:
        return int(args.run(args))
    if args.command == "bench" and args.bench == "paper":
        from bench.paper.cli import main as paper_main

        return paper_main(args)
    if args.command == "bench" and args.bench == "throughput":
        from bench.throughput import main as throughput_main

        return throughput_main(args)
    if args.command == "decode":
        from services.decode_cli import main as decode_main

        return decode_main(args)
    if args.command in ("replay", "subscribe"):
        from services import clients

        return int(getattr(clients, args.command)(args))
    if args.command == "kafka":
        return run_kafka(args.host, args.port)
    if args.command == "scorer":
        import logging

        from services.scorer.__main__ import run

        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
        )
        return run()
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    raise SystemExit(main())
