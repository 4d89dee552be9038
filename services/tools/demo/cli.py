"""``ahunt demo``: the whole product live (see the package docstring), its summary printed."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from services.tools.demo.keep import keep_open
from services.tools.demo.report import DemoResult
from services.tools.demo.run import REPO, default_samples, run_demo

# The real-sky demo's default: the shared real ZTF packets and their weak labels.
REAL_ALERTS = REPO.parent / "shared" / "data" / "alerts" / "ztf-real"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nights", type=int, default=5)
    p.add_argument("--alerts-per-night", type=int, default=1500)
    p.add_argument(
        "--budget", type=int, default=None, help="alerts per user per night (25; real sky: 10)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("demo-output"))
    p.add_argument("--samples", type=Path, default=None, help="real ZTF alerts to replay too")
    p.add_argument(
        "--alerts",
        type=Path,
        nargs="?",
        const=REAL_ALERTS,
        default=None,
        metavar="DIR",
        help="real sky: replay these Avro alert packets instead of the simulator (alone: "
        f"{REAL_ALERTS})",
    )
    p.add_argument(
        "--labels",
        type=Path,
        default=None,
        metavar="FILE",
        help="real sky: CSV of label by candid/alert_id and/or objectId (default DIR/labels.csv)",
    )
    p.add_argument(
        "--bootstrap-share",
        type=float,
        default=0.3,
        help="real sky: share of the alerts, earliest first, that bootstraps v1 unlabelled",
    )
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

    labels = args.labels
    if args.alerts is not None and labels is None:
        labels = args.alerts / "labels.csv"
    if labels is not None and args.alerts is None:
        raise SystemExit("ahunt demo: --labels goes with --alerts DIR (the packets they label)")
    if labels is not None and not labels.is_file():
        raise SystemExit(f"ahunt demo: no labels file {labels} (give one with --labels FILE)")
    budget = args.budget or (10 if args.alerts is not None else 25)
    result = run_demo(
        args.out,
        nights=args.nights,
        per_night=args.alerts_per_night,
        budget=budget,
        seed=args.seed,
        samples=args.samples or default_samples(),
        progress=lambda line: print(line, flush=True),
        on_done=keep if args.keep else None,
        alerts=args.alerts,
        labels=labels,
        bootstrap_share=args.bootstrap_share,
    )
    if not args.keep:
        summary(result)
    return 1 if dead else 0


def summary(result: DemoResult) -> None:
    last = result.rows[-1]
    print(f"\nfinished in {result.seconds:.0f} s; outputs in {result.out}/")
    print(f"  the users answered from {result.labels_origin}")
    for u in result.users:
        boring = f"; {last.boring_delivered[u.name]} {'/'.join(u.boring)} delivered"
        print(
            f"  {u.name}: last night {last.interesting_share[u.name]:.0%} of deliveries were "
            f"{'/'.join(u.interesting)} (stream {result.stream_share[u.name]:.1%}, that night "
            f"{last.stream_share[u.name]:.1%}, "
            f"isolation forest {last.baseline_share[u.name]:.0%})" + (boring if u.boring else "")
        )
    print(f"  dead letters: {len(result.dead_letters)} (broken packets sent: {result.bad_packets})")
