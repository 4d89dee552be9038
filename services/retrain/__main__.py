"""``python -m services.retrain``: the same as ``ahunt retrain``."""

from __future__ import annotations

from services.cli import run_command

if __name__ == "__main__":
    raise SystemExit(run_command("retrain"))
