"""The linters and the type checker, as part of the test suite: `.ci/run` (the README's test
command) fails on any finding of `ruff check`, `ruff format --check` or `mypy` (their settings are
in pyproject.toml). They come with the dev extra, so a missing one fails too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    "command",
    [("ruff", "check", "."), ("ruff", "format", "--check", "."), ("mypy",)],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_no_finding(command: tuple[str, ...]) -> None:
    out = _run(*command)
    assert out.returncode == 0, (
        f"`{' '.join(command)}` found:\n{out.stdout[-4000:]}{out.stderr[-2000:]}"
    )


def test_test_module_names_are_unique() -> None:
    """pytest imports test modules by basename (rootdir-relative, no packages): two files of one
    name in different folders abort the whole collection ("import file mismatch"), which only
    shows on a clean checkout without stale bytecode, as in CI."""
    seen: dict[str, Path] = {}
    clashes = []
    paths = [
        p
        for top in ("tests", "models", "bench", "services")
        for p in ROOT.glob(f"{top}/**/test_*.py")
    ]
    for path in sorted(paths):
        if path.name in seen:
            clashes.append(f"{seen[path.name].relative_to(ROOT)} and {path.relative_to(ROOT)}")
        seen.setdefault(path.name, path)
    assert not clashes, "rename one of each pair: " + "; ".join(clashes)
