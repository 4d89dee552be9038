"""The benchmarks' ``ahunt`` sub-commands, registered by ``services.cli`` when ``bench`` is
installed (the serving image has no ``bench/``; the services never import it)."""

from __future__ import annotations

from services.cli import Command

COMMANDS: tuple[Command, ...] = (
    Command("bench", "benchmarks", "bench.cli", main=""),
    Command(
        "feedback-bench",
        "benchmark the feedback API over HTTP (see docs/PERFORMANCE.md)",
        "bench.feedback",
    ),
)
