"""``ahunt bench paper | throughput``: each benchmark's module is imported when it is chosen
(the paper's options come from the learning code, which needs torch and scikit-learn)."""

from __future__ import annotations

import argparse

from services.cli import Command, add_commands

BENCHMARKS: tuple[Command, ...] = (
    Command(
        "paper",
        "the AHUNT paper's protocol on digits, MNIST or real ZTF alerts (--dataset ztf-real)",
        "bench.paper.cli",
    ),
    Command(
        "throughput", "the scorer through a real broker, with stage ceilings", "bench.throughput"
    ),
    Command(
        "soak",
        "the whole stack under a steady stream with labels and retrains: memory slopes, losses",
        "bench.soak",
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_commands(parser, BENCHMARKS, dest="bench")
