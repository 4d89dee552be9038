"""``ahunt scorer``: the scoring service in the foreground (settings from the environment:
``AHUNT_SCORER_*``, ``KAFKA_*``, ``REDIS_URL``)."""

from __future__ import annotations

import argparse


def add_arguments(_parser: argparse.ArgumentParser) -> None:
    """No options: every setting comes from the environment (docs/OPERATIONS.md)."""


def main(_args: argparse.Namespace) -> int:
    from services.scorer.app import run

    return run()
