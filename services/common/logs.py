"""The one logging set-up of every ``ahunt`` process.

``services.cli.main`` calls :func:`setup` once, at the level the command declares (a long-running
service logs at INFO; a tool that prints its own progress, like ``ahunt demo``, at WARNING).
Commands that declare none keep Python's default: warnings and errors only.
"""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def setup(level: int | str = logging.INFO) -> None:
    """Log ``level`` and above to stderr, one line per record in :data:`FORMAT`."""
    logging.basicConfig(level=level, format=FORMAT)
