"""``ahunt scorer``: the scoring service in the foreground (settings from the environment:
``AHUNT_SCORER_*``, ``KAFKA_*``, ``REDIS_URL``)."""

from __future__ import annotations

import argparse
import logging


def add_arguments(_parser: argparse.ArgumentParser) -> None:
    """No options: every setting comes from the environment (docs/OPERATIONS.md)."""


def main(_args: argparse.Namespace) -> int:
    from services.scorer.app import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return run()
