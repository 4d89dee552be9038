#!/usr/bin/env python3
"""Container health check: ``ahunt-healthcheck [SERVICE] [--ready]`` exits 0 when healthy.

One image runs every service, so the check finds out which one this container runs (the argument,
or PID 1's ``ahunt <service>`` command line) and asks that service's HTTP port for ``/metrics``
(ports from the same environment variables the service reads). ``--ready`` is stricter: the
scorer must also serve a model (``ahunt_scorer_model_info ... 1``). Standard library only, so it
starts fast and runs in either image target.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

# service -> (port variable, default port); the settings classes define the same names.
PORTS = {
    "scorer": ("AHUNT_SCORER_METRICS_PORT", 9101),
    "feedback": ("AHUNT_FEEDBACK_PORT", 8080),
    "retrain": ("AHUNT_RETRAIN_METRICS_PORT", 9103),
}


def service_of_pid1() -> str | None:
    """The sub-command in PID 1's ``.../ahunt <sub-command>`` command line."""
    try:
        args = Path("/proc/1/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    words = [a.decode(errors="replace") for a in args if a]
    for i, word in enumerate(words[:-1]):
        if os.path.basename(word) == "ahunt":
            return words[i + 1]
    return None


def metrics_text(port: int, timeout: float = 3.0) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
        if r.status != 200:
            raise OSError(f"HTTP {r.status}")
        return str(r.read().decode())


def serves_model(text: str) -> bool:
    """True when some ``ahunt_scorer_model_info`` sample is 1."""
    return any(
        line.startswith("ahunt_scorer_model_info{") and float(line.rsplit(" ", 1)[1]) == 1.0
        for line in text.splitlines()
    )


def check(service: str | None, ready: bool) -> tuple[bool, str]:
    if service not in PORTS:
        return True, f"no HTTP check for {service!r}: the process is alive"
    variable, default = PORTS[service]
    port = int(os.environ.get(variable, default))
    if port == 0:
        return True, f"{variable}=0: metrics disabled, nothing to ask"
    try:
        text = metrics_text(port)
    except OSError as exc:
        return False, f"{service}: /metrics on port {port} failed: {exc}"
    if ready and service == "scorer" and not serves_model(text):
        return False, "scorer: up, but no model loaded yet"
    return True, f"{service}: ok"


def main(argv: list[str]) -> int:
    ready = "--ready" in argv
    names = [a for a in argv if not a.startswith("-")]
    healthy, message = check(names[0] if names else service_of_pid1(), ready)
    print(message)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
