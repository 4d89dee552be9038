"""``ahunt scorer``: the scoring service in the foreground (settings from the environment:
``AHUNT_SCORER_*``, ``KAFKA_*``, ``REDIS_URL``); ``--workers N`` runs N supervised scorer
processes in one consumer group (``services.scorer.supervisor``)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every other setting comes from the environment (docs/OPERATIONS.md)."""
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="scorer processes, one consumer group, supervised; metrics on "
        "AHUNT_SCORER_METRICS_PORT + i (default: AHUNT_SCORER_WORKERS, 1)",
    )


def main(args: argparse.Namespace) -> int:
    from services.scorer.settings import ScorerSettings

    settings = ScorerSettings()
    workers = settings.workers if args.workers is None else args.workers
    if workers < 1:
        raise SystemExit("--workers must be at least 1")
    if workers == 1:
        from services.scorer.app import run

        return run(settings)
    from services.scorer import supervisor

    return supervisor.run(workers, settings.metrics_port)
