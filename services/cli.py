"""The `ahunt` command: one entry point, one sub-command per service or tool."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ahunt",
        description="ahunt-broker: personalised anomaly detection for astronomical alert streams",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    bench = commands.add_parser("bench", help="benchmarks")
    benches = bench.add_subparsers(dest="bench", required=True)
    paper = benches.add_parser(
        "paper",
        help="reproduce the AHUNT paper's protocol on digits or MNIST",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    # Imported here so `ahunt --help` does not pay for torch.
    from bench.paper.cli import add_arguments

    add_arguments(paper)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "bench" and args.bench == "paper":
        from bench.paper.cli import main as paper_main

        return paper_main(args)
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    raise SystemExit(main())
