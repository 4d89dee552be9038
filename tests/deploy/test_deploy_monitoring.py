"""Dashboards, scrape config and alert rules, without running anything: generated JSON in sync,
provisioning consistent, every query naming metrics (and labels) the code defines, and promtool's
checks and rule unit tests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from services.common import config_doc
from tests.deploy.deploy_refs import (
    DASHBOARDS,
    DEPLOY,
    PROMETHEUS_OWN,
    ROOT,
    all_queries,
    exported_series,
    label_names,
    metric_names,
    promtool,
    rules,
)

PROMETHEUS = DEPLOY / "prometheus"


def test_dashboards_are_what_the_generator_writes() -> None:
    sys.path.insert(0, str(DEPLOY / "grafana"))
    try:
        import build_dashboards
    finally:
        sys.path.remove(str(DEPLOY / "grafana"))
    rendered = build_dashboards.render()
    assert sorted(rendered) == sorted(p.name for p in DASHBOARDS)
    for path in DASHBOARDS:
        assert path.read_text() == rendered[path.name], (
            f"{path.name} is stale: run python deploy/grafana/build_dashboards.py"
        )


def test_dashboards_use_the_provisioned_datasource_and_cover_the_issue() -> None:
    sources = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    uids = {s["uid"] for s in sources}
    assert len(sources) == 1 and sources[0]["type"] == "prometheus"
    titles = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert board["uid"] == path.stem
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids))
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            titles.append(panel["title"].lower())
            assert panel["targets"], f"{panel['title']}: no query"
            assert panel["datasource"]["uid"] in uids
            assert all(t["datasource"]["uid"] in uids for t in panel["targets"])
    text = " / ".join(titles)
    for needed in (
        "lag per topic and partition",
        "stage latency",
        "end-to-end latency",
        "dead letters per second by reason",
        "deliveries per user",
        "labels",
        "model version timeline",
        "retrain outcomes",
        "requests per second",
        "server errors",
        "targets up",
    ):
        assert needed in text, f"no panel for {needed!r}"


def test_every_query_names_metrics_and_labels_the_code_defines() -> None:
    series = exported_series()
    problems = []
    queries = all_queries()
    assert len(queries) > 40
    for q in queries:
        names = metric_names(q.expr)
        assert names, f"{q.where}: no metric in {q.expr!r}"
        known = names & (set(series) | PROMETHEUS_OWN)
        for name in names - known:
            problems.append(f"{q.where}: {name} is not defined in services/")
        labels = {"job", "instance", "le", "quantile"}
        for name in known - PROMETHEUS_OWN:
            labels |= set(series[name].labels)
        unknown_labels = label_names(q.expr) - labels
        if unknown_labels and not names - known:
            problems.append(f"{q.where}: labels {sorted(unknown_labels)} not on {sorted(names)}")
    assert not problems, "\n".join(problems)


def test_query_parsing_finds_metrics_and_labels() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, stage) (rate(ahunt_x_bucket{a="b", c=~"d"}'
        '[5m]))) / scalar(up{job="ahunt-y"}) and on (instance) ahunt_z > 1e3'
    )
    assert metric_names(expr) == {"ahunt_x_bucket", "up", "ahunt_z"}
    assert label_names(expr) == {"le", "stage", "a", "c", "job", "instance"}


def test_rules_use_only_scrape_jobs_that_exist() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {j["job_name"] for j in config["scrape_configs"]}
    assert {"ahunt-scorer", "ahunt-feedback", "ahunt-retrain"} <= jobs
    for q in all_queries():
        for job in re.findall(r'job="([^"]+)"', q.expr):
            assert job in jobs, f"{q.where}: job {job} is not scraped"
    names = [r["alert"] for r in rules()]
    assert len(names) == len(set(names))
    for needed in (
        "AhuntScorerLagGrowing",
        "AhuntDeadLetterSpike",
        "AhuntScorerNoModel",
        "AhuntRetrainFailing",
        "AhuntFeedbackServerErrors",
        "AhuntServiceDown",
    ):
        assert needed in names
    for rule in rules():
        assert rule["labels"]["severity"] in ("info", "warning", "critical")
        assert rule["annotations"]["summary"]


def run_promtool(*args: str) -> str:
    out = subprocess.run([promtool(), *args], capture_output=True, text=True, cwd=PROMETHEUS)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def test_promtool_checks_the_scrape_config_and_its_rules() -> None:
    out = run_promtool("check", "config", "prometheus.yml")
    assert "SUCCESS" in out and "rule files found" in out


def test_promtool_checks_the_rules() -> None:
    files = sorted(str(p.relative_to(PROMETHEUS)) for p in (PROMETHEUS / "rules").glob("*.yml"))
    out = run_promtool("check", "rules", *files)
    assert f"SUCCESS: {len(list(rules()))} rules found" in out


def test_promtool_rule_unit_tests_pass() -> None:
    files = sorted(str(p.relative_to(PROMETHEUS)) for p in (PROMETHEUS / "tests").glob("*.yml"))
    assert files
    out = run_promtool("test", "rules", *files)
    assert "SUCCESS" in out


def test_promtool_rule_unit_tests_can_fail(tmp_path: os.PathLike[str]) -> None:
    """The unit tests are not vacuous: expecting an alert that does not fire fails."""
    case = {
        "rule_files": [str(p) for p in sorted((PROMETHEUS / "rules").glob("*.yml"))],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": 'up{job="ahunt-scorer",instance="a"}', "values": "1x10"}
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "5m",
                        "alertname": "AhuntServiceDown",
                        "exp_alerts": [{"exp_labels": {"job": "ahunt-scorer"}}],
                    }
                ],
            }
        ],
    }
    path = os.path.join(tmp_path, "wrong.test.yml")
    with open(path, "w") as f:
        yaml.safe_dump(case, f)
    out = subprocess.run([promtool(), "test", "rules", path], capture_output=True, text=True)
    assert out.returncode != 0 and "FAILED" in out.stdout + out.stderr


# --- the configuration reference in docs/OPERATIONS.md -----------------------------------------


def test_operations_doc_configuration_reference_is_in_sync() -> None:
    assert config_doc.main(["--check", str(ROOT / "docs" / "OPERATIONS.md")]) == 0, (
        "run: python -m services.common.config_doc --write docs/OPERATIONS.md"
    )


def test_every_settings_class_is_documented() -> None:
    """Every settings class imports (a missing service or dependency fails here, never skips)."""
    classes = list(config_doc.load_classes(strict=True))
    assert len(classes) == len(config_doc.SETTINGS_CLASSES)


def test_every_documented_variable_is_read_by_its_class(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set each variable to a value its field must reject (or keep, for free text) and see the
    class react: proves the documented name is the one the code reads."""
    from pydantic import SecretStr, ValidationError
    from pydantic_settings import SettingsError

    for cls in config_doc.load_classes():
        for field_name, field in cls.model_fields.items():
            (name, *_) = config_doc.env_names(cls, field_name, field)
            with monkeypatch.context() as m:
                for other in list(os.environ):
                    if other.startswith(("AHUNT_", "KAFKA_", "REDIS_")):
                        m.delenv(other)
                m.setenv(name, "[not a valid value")
                try:
                    value = getattr(cls(), field_name)
                except (ValidationError, SettingsError):  # rejected: the name is read
                    continue
                if isinstance(value, SecretStr):
                    value = value.get_secret_value()
                assert "[not a valid value" in str(value), f"{cls.__name__}.{field_name}: {name}"
