"""``ahunt demo``: the whole product live (see the package docstring), its summary printed."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from services.tools.demo.keep import keep_open
from services.tools.demo.report import DemoResult
from services.tools.demo.run import default_samples, run_demo
from services.tools.demo.users import USERS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nights", type=int, default=5)
    p.add_argument("--alerts-per-night", type=int, default=1500)
    p.add_argument("--budget", type=int, default=25, help="alerts per user per night")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("demo-output"))
    p.add_argument("--samples", type=Path, default=None, help="real ZTF alerts to replay too")
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the stack up afterwards: prints the desk's URL and each user's token",
    )


def main(args: argparse.Namespace) -> int:
    # SIGTERM unwinds like Ctrl-C, so the stack's children and servers are stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    dead: list[str] = []

    def keep(
        result: DemoResult, api: str, tokens: dict[str, str], failed: Callable[[], str | None]
    ) -> None:
        summary(result)
        try:
            if (gone := keep_open(api, tokens, failed)) is not None:
                dead.append(gone)
        except KeyboardInterrupt:  # Ctrl-C: the stack stops on the way out
            pass

    result = run_demo(
        args.out,
        nights=args.nights,
        per_night=args.alerts_per_night,
        budget=args.budget,
        seed=args.seed,
        samples=args.samples or default_samples(),
        progress=lambda line: print(line, flush=True),
        on_done=keep if args.keep else None,
    )
    if not args.keep:
        summary(result)
    return 1 if dead else 0


def summary(result: DemoResult) -> None:
    last = result.rows[-1]
    print(f"\nfinished in {result.seconds:.0f} s; outputs in {result.out}/")
    for u in USERS:
        print(
            f"  {u.name}: last night {last.interesting_share[u.name]:.0%} of deliveries were "
            f"{'/'.join(u.interesting)} (stream {result.stream_share[u.name]:.1%}, "
            f"isolation forest {last.baseline_share[u.name]:.0%}); "
            f"{last.boring_delivered[u.name]} {'/'.join(u.boring)} delivered"
        )
    print(f"  dead letters: {len(result.dead_letters)} (broken packets sent: {result.bad_packets})")
