"""``python -m services.feedback``: the same as ``ahunt feedback``."""

from __future__ import annotations

from services.cli import run_command

if __name__ == "__main__":
    raise SystemExit(run_command("feedback"))
