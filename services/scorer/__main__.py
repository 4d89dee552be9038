"""``python -m services.scorer``: the same as ``ahunt scorer``."""

from __future__ import annotations

from services.cli import run_command

if __name__ == "__main__":
    raise SystemExit(run_command("scorer"))
