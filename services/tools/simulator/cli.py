"""``ahunt simulate``: write a simulated ZTF survey (Avro alerts + truth.csv) to a folder."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nights", type=int, default=3, help="nights to simulate")
    parser.add_argument("--alerts-per-night", type=int, default=1000, help="alerts per night")
    parser.add_argument("--seed", type=int, default=0, help="random seed (fixes every byte)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--bad-packets",
        type=int,
        default=0,
        metavar="K",
        help="also write K deliberately broken packets per night into night-XX/bad/ "
        "(listed in bad.csv with the rejection each must cause)",
    )
    parser.add_argument(
        "--mix",
        type=str,
        default=None,
        metavar="JSON",
        help='class weights, e.g. \'{"supernova": 0.5, "satellite": 0.5}\' (default: the '
        "survey mix in services/tools/simulator/config.py)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier simulation in --out"
    )
    parser.add_argument("--quiet", action="store_true", help="no per-night progress")


def main(args: argparse.Namespace) -> int:
    from services.tools.simulator.config import SimulationConfig
    from services.tools.simulator.writer import write_simulation

    try:
        config = (
            SimulationConfig()
            if args.mix is None
            else SimulationConfig(class_mix=json.loads(args.mix))
        )
    except (ValueError, ValidationError) as exc:
        print(f"ahunt simulate: bad --mix: {exc}", file=sys.stderr)
        return 2
    progress: Callable[[int, int], None] | None = None
    if not args.quiet:

        def progress(night: int, alerts: int) -> None:
            print(f"night {night:02d}: {alerts} alerts", file=sys.stderr, flush=True)

    try:
        summary = write_simulation(
            args.out,
            args.nights,
            args.alerts_per_night,
            args.seed,
            bad_per_night=args.bad_packets,
            config=config,
            overwrite=args.overwrite,
            progress=progress,
        )
    except (FileExistsError, ValueError) as exc:
        print(f"ahunt simulate: {exc}", file=sys.stderr)
        return 2
    print("\n".join(summary.lines()))
    return 0
