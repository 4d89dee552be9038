"""The serving services must run without torch (the slim image has none)."""

from __future__ import annotations

import subprocess
import sys


def test_scorer_and_clients_do_not_import_torch() -> None:
    code = (
        "import sys, services.scorer.app, services.scorer.cli, services.tools.replay, "
        "services.tools.subscribe, services.tools.decode, models.interest, models.questions, "
        "models.manifest; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
