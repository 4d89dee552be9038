"""What the deployment files refer to, and what the code defines, for the deploy tests to compare:
metric definitions found in the code (by AST), PromQL queries of the dashboards and alert rules
and the metric and label names they use, commands and environment variables of the manifests."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RULES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
IMAGE = "ahunt-broker"
# Series every Prometheus makes itself; the queries may use them.
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS"}
ALWAYS_LABELS = {"job", "instance", "le", "quantile", "__name__"}
_METRIC_CLASSES = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("_sum", "_count", "_created"),
    "Info": ("_info",),
}


@dataclass(frozen=True)
class MetricDef:
    name: str  # as defined (a counter without _total)
    kind: str
    labels: tuple[str, ...]
    where: str

    def series(self) -> set[str]:
        base = self.name.removesuffix("_total") if self.kind == "Counter" else self.name
        return {base + s for s in _METRIC_CLASSES[self.kind]}


def _str_list(node: ast.expr | None) -> tuple[str, ...]:
    if isinstance(node, ast.List | ast.Tuple):
        return tuple(
            e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
        )
    return ()


def metric_definitions(root: Path = ROOT / "services") -> dict[str, MetricDef]:
    """Every prometheus_client metric constructed in the code with a literal ahunt_* name."""
    found: dict[str, MetricDef] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            kind = (
                func.id
                if isinstance(func, ast.Name)
                else (func.attr if isinstance(func, ast.Attribute) else "")
            )
            if kind not in _METRIC_CLASSES or not node.args:
                continue
            first = node.args[0]
            if not (
                isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and first.value.startswith("ahunt_")
            ):
                continue
            labels = _str_list(node.args[2] if len(node.args) > 2 else None)
            for kw in node.keywords:
                if kw.arg == "labelnames":
                    labels = _str_list(kw.value)
            found[first.value] = MetricDef(
                first.value, kind, labels, f"{path.relative_to(ROOT)}:{node.lineno}"
            )
    return found


def exported_series() -> dict[str, MetricDef]:
    """Series name as Prometheus stores it -> its definition."""
    return {s: d for d in metric_definitions().values() for s in d.series()}


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_IDENT = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR_BODY = re.compile(r"\{([^}]*)\}")
_DURATION = re.compile(r"\[[^\]]*\]")


def grafana_to_promql(expr: str, rate_interval: str = "1m") -> str:
    """A panel's query as Prometheus runs it (Grafana's interval variables substituted)."""
    return (
        expr.replace("$__rate_interval", rate_interval)
        .replace("$__interval", "15s")
        .replace("$__range", "1h")
    )


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (identifiers followed by a selector or a range,
    or standing for one, i.e. not functions, keywords or label names)."""
    bare = _STRING.sub('""', expr)
    bare = _GROUPING.sub(" ", bare)
    bare = _SELECTOR_BODY.sub("{}", bare)
    bare = _DURATION.sub("[]", bare)
    names = set()
    for m in re.finditer(rf"(?<![\w:])({_IDENT})(\s*[\[{{(])?", bare):
        ident, follow = m.group(1), (m.group(2) or "").strip()
        if follow == "(" or ident in _KEYWORDS or re.fullmatch(r"\d.*|e\d*", ident):
            continue
        names.add(ident)
    return names


_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "Inf",
    "NaN",
    "atan2",
}


def label_names(expr: str) -> set[str]:
    """Label names used in matchers and in by/without/on/ignoring clauses."""
    bare = _STRING.sub('""', expr)
    out: set[str] = set()
    for m in _GROUPING.finditer(bare):
        out |= {x.strip() for x in m.group(1).split(",") if x.strip()}
    for m in _SELECTOR_BODY.finditer(bare):
        out |= set(re.findall(rf"({_IDENT})\s*(?:=~|!~|!=|=)", m.group(1)))
    return out


def selectors(expr: str) -> list[str]:
    """The vector selectors of an expression (``name{matchers}`` or a bare name), for checking
    that the series an empty expression would watch exist."""
    masked = _STRING.sub(lambda m: "#" * len(m.group(0)), expr)
    out = []
    for name in metric_names(expr):
        for m in re.finditer(rf"(?<![\w:]){re.escape(name)}(?![\w:])", masked):
            end = m.end()
            if masked[end : end + 1] == "{":
                end = masked.index("}", end) + 1
            out.append(expr[m.start() : end])
    return sorted(set(out))


@dataclass(frozen=True)
class Query:
    where: str  # "dashboard X / panel Y / A" or "rule AlertName"
    expr: str  # PromQL as Prometheus runs it


def dashboard_queries() -> Iterator[Query]:
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                yield Query(
                    f"{path.stem} / {panel['title']} / {target['refId']}",
                    grafana_to_promql(target["expr"]),
                )
        for a in board.get("annotations", {}).get("list", []):
            if "expr" in a:
                yield Query(f"{path.stem} / annotation {a['name']}", grafana_to_promql(a["expr"]))


def rules() -> Iterator[dict[str, Any]]:
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            yield from group["rules"]


def rule_queries() -> Iterator[Query]:
    for rule in rules():
        name = rule.get("alert") or rule.get("record")
        yield Query(f"rule {name}", rule["expr"])


def all_queries() -> list[Query]:
    return [*dashboard_queries(), *rule_queries()]


def promtool() -> str:
    """The promtool binary: under CI its absence is a failure (.ci/setup installs it)."""
    found = shutil.which("promtool")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail(
            "promtool not found under CI=true: .ci/setup must install Debian's "
            "`prometheus` package (apt-get install prometheus)"
        )
    pytest.skip("promtool not installed (apt-get install prometheus); required under CI")


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail(
            "prometheus not found under CI=true: .ci/setup must install Debian's "
            "`prometheus` package (apt-get install prometheus)"
        )
    pytest.skip("prometheus not installed (apt-get install prometheus); required under CI")


def load_yaml_documents(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
