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


def imports(path: Path, runtime_only: bool = False) -> Iterator[str]:
    """Absolute names of everything ``path`` imports (``from a import b`` gives ``a`` and
    ``a.b``: b may be a module). ``runtime_only`` leaves out ``if TYPE_CHECKING:`` blocks (types
    for the checker, never loaded)."""
    tree = ast.parse(path.read_text(), str(path))
    skipped: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
                skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
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


def _string_literals(package: str) -> Iterator[tuple[str, int, str]]:
    """(module, line, text) of every string literal (f-strings: their literal parts), logger
    names excepted (``ahunt.feedback`` is a logger as well as a topic)."""
    for name, path in modules(package).items():
        tree = ast.parse(path.read_text(), str(path))
        loggers = {
            id(arg)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("getLogger")
            for arg in node.args
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if id(node) not in loggers:
                    yield name, node.lineno, node.value
            elif isinstance(node, ast.JoinedStr):
                text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
                yield name, node.lineno, text


def test_redis_key_and_topic_names_come_from_one_module_each() -> None:
    """Redis keys live in services/common/keys.py, Kafka topics in services/common/topics.py."""
    found = [
        f"{name}:{line} {text!r}"
        for package in ("services", "bench")
        for name, line, text in _string_literals(package)
        if (text.startswith("ahunt:") and name != "services.common.keys")
        or (
            text.startswith(("ahunt.alerts", "ahunt.dlq", "ahunt.feedback", "ahunt.user."))
            and name != "services.common.topics"
        )
    ]
    assert found == []


def test_benchmark_methods_share_types_not_each_other() -> None:
    """bench/paper/peers.py needs the protocol's types (protocol.py), not the other methods."""
    assert "bench.paper.methods" not in set(imports(ROOT / "bench" / "paper" / "peers.py"))
    assert "bench.paper.peers" not in set(imports(ROOT / "bench" / "paper" / "protocol.py"))


def test_services_share_nothing_but_common() -> None:
    """The scorer, the feedback API and the retrain service talk through Kafka and Redis only:
    none imports another (each may use services.common, and its __main__ the `ahunt` CLI)."""
    found = []
    for service in ("services.scorer", "services.feedback", "services.retrain"):
        others = tuple(s for s in SERVICES if s not in (service, "services.common"))
        found += offences((service,), others)
    assert offences(("services.common",), SERVICES[1:]) == []
    assert found == []


INFRASTRUCTURE = ("confluent_kafka", "redis", "fastapi", "starlette", "uvicorn", "httpx")
# The pure cores: data in, decisions out; tested without any broker or server.
PURE = (
    "services.scorer.handler",
    "services.scorer.selection",
    "services.scorer.clock",
    "services.scorer.records",
    "services.feedback.handler",
    "services.retrain.handler",
    "services.retrain.gate",
    "services.retrain.dataset",
    "services.common.keys",
    "services.common.topics",
    "services.common.users",
    "services.common.labels",
)


def _project_imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for package in ("models", "services"):
        for name, path in modules(package).items():
            graph[name] = set(imports(path, runtime_only=True))
    return graph


def test_pure_cores_import_no_kafka_redis_or_http_even_indirectly() -> None:
    graph = _project_imports()
    for root in PURE:
        seen, todo, chain = {root}, [root], {root: root}
        while todo:
            name = todo.pop()
            for target in graph.get(name, ()):
                assert not within(target, INFRASTRUCTURE), f"{chain[name]} -> {target}"
                if target in graph and target not in seen:
                    seen.add(target)
                    chain[target] = f"{chain[name]} -> {target}"
                    todo.append(target)
