"""Models on a local directory: ``<root>/<survey>/<version>/`` (an exported model directory)
and ``<root>/<survey>/CURRENT`` naming the live version. Promotion rewrites CURRENT atomically
(write a temp file, fsync, rename), so a reader sees the old or the new version, never neither.

The retrain issue adds distribution to scorers on other hosts; this is the on-disk form they
all share.
"""

from __future__ import annotations

from pathlib import Path

from models.model_dir import atomic_write_text

POINTER = "CURRENT"


def current_version(root: Path, survey: str) -> str | None:
    try:
        text = (root / survey / POINTER).read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def version_dir(root: Path, survey: str, version: str) -> Path:
    if "/" in version or version in ("", ".", ".."):
        raise ValueError(f"invalid version name {version!r}")
    return root / survey / version


def promote(root: Path, survey: str, version: str) -> None:
    """Make ``version`` (already under ``<root>/<survey>/``) the live one."""
    target = version_dir(root, survey, version)
    if not (target / "manifest.json").exists():
        raise FileNotFoundError(f"no exported model at {target}")
    atomic_write_text(root / survey / POINTER, version + "\n")


def surveys(root: Path) -> list[str]:
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if (p / POINTER).exists())
