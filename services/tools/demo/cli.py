"""``ahunt demo``: the whole product live (see the package docstring), its summary printed."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from services.tools.demo.run import default_samples, run_demo
from services.tools.demo.users import USERS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nights", type=int, default=5)
    p.add_argument("--alerts-per-night", type=int, default=1500)
    p.add_argument("--budget", type=int, default=25, help="alerts per user per night")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("demo-output"))
    p.add_argument("--samples", type=Path, default=None, help="real ZTF alerts to replay too")


def main(args: argparse.Namespace) -> int:
    # SIGTERM unwinds like Ctrl-C, so the stack's children and servers are stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    result = run_demo(
        args.out,
        nights=args.nights,
        per_night=args.alerts_per_night,
        budget=args.budget,
        seed=args.seed,
        samples=args.samples or default_samples(),
        progress=lambda line: print(line, flush=True),
    )
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
    return 0
