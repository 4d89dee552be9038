"""What each part may import (docs/ARCHITECTURE.md), checked on the source: every ``import``
statement, function-level ones included, of every module."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("services.common", "services.scorer", "services.feedback", "services.retrain")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(package: str) -> dict[str, Path]:
    root = ROOT / package.replace(".", "/")
    return {module_name(p): p for p in sorted(root.rglob("*.py"))}


def imports(path: Path) -> Iterator[str]:
    """Absolute names of everything ``path`` imports (``from a import b`` gives ``a`` and
    ``a.b``: b may be a module)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def offences(packages: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{name} imports {target}"
        for package in packages
        for name, path in modules(package).items()
        for target in imports(path)
        if within(target, forbidden)
    ]


def test_the_import_checker_sees_function_level_imports() -> None:
    found = set(imports(ROOT / "services" / "cli.py"))
    assert "importlib" in found and "argparse" in found
    assert "services.scorer.app" in set(imports(ROOT / "services" / "scorer" / "cli.py"))


def test_services_and_tools_never_import_the_benchmarks() -> None:
    """The serving image ships no bench/: bench registers its own commands (bench/commands.py)."""
    assert offences(("services",), ("bench",)) == []


def test_services_never_import_the_tools() -> None:
    """Tools (replay, subscribe, the stack, the simulator, the demo) use the services, never the
    other way round."""
    assert offences(SERVICES, ("services.tools",)) == []


def test_the_learning_core_knows_no_infrastructure() -> None:
    """models/ is pure learning code: no Kafka, Redis or HTTP, nothing from the services."""
    forbidden = ("confluent_kafka", "redis", "fastapi", "starlette", "uvicorn", "httpx", "urllib")
    assert offences(("models",), (*forbidden, "services", "bench")) == []


def test_settings_are_read_through_the_settings_classes_only() -> None:
    """One settings family (services.common.settings): no module reads a variable itself.
    Passing the environment on to a child process (``{**os.environ, ...}``) is not reading it."""
    found = []
    for package in ("services", "bench"):
        for name, path in modules(package).items():
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                text = ast.unparse(node) if isinstance(node, ast.Call | ast.Subscript) else ""
                reads = text.startswith(("os.getenv(", "os.environ.get(", "os.environ["))
                if reads and not (
                    isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store)
                ):
                    found.append(f"{name}:{node.lineno} {text}")
    assert found == []
