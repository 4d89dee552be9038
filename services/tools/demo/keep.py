"""``ahunt demo --keep``: after the demo, the stack stays up for a person to explore the desk."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping


def keep_open(
    api_url: str,
    tokens: Mapping[str, str],
    failed: Callable[[], str | None],
    stop: threading.Event | None = None,
    say: Callable[[str], None] = print,
) -> str | None:
    """Print where the desk is and each simulated user's token, then wait until ``stop`` is set
    (Ctrl-C and SIGTERM end the wait too, by their exceptions) or a service dies; returns the
    dead service's name, if any."""
    stop = stop or threading.Event()
    say(f"\nThe stack stays up. The Oracle's desk: {api_url}/desk  (API docs: {api_url}/docs)")
    for user, token in tokens.items():
        say(f"  sign in as {user}: {token}")
    say("Everything else (scorer, Kafka, Redis) keeps running as in the demo. Ctrl-C stops it.")
    while not stop.wait(0.5):
        dead = failed()
        if dead:
            say(f"{dead} stopped: taking the stack down")
            return dead
    return None
