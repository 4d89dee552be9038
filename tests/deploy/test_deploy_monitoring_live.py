"""The monitoring, end to end: the real services (scorer, feedback API, retrain) as `ahunt`
processes on a real broker and a real Redis, a real Prometheus scraping them with the project's
scrape config and rules, real traffic (sample alerts, a poison packet, labels through the API, a
model upgraded by hand, a retrain), then every dashboard query and every alert expression run
through Prometheus's HTTP API: none may name a series the services do not export, and each must
return data unless it is on the short allow-list below."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.common import keys, store
from services.common.embedded import EmbeddedRedis, free_port
from services.common.kafka import producer
from services.common.registry import Registry
from services.common.settings import KafkaSettings
from services.common.users import Budget, UserProfile
from services.feedback.tokens import add_user
from tests.deploy.deploy_refs import (
    DEPLOY,
    ROOT,
    Query,
    all_queries,
    metric_names,
    prometheus_binary,
)

pytestmark = pytest.mark.slow

# Expressions that may legitimately return nothing here: alert conditions that must not fire on a
# healthy system, and panels of events this run does not cause. The series they read must still
# exist (checked), unless listed in MAY_BE_ABSENT.
MAY_BE_EMPTY = {
    "rule AhuntScorerLagGrowing": "lag is small and not growing",
    "rule AhuntDeadLetterSpike": "one poison packet is below the spike threshold",
    "rule AhuntDeadLettersNotProduced": "every dead letter is produced",
    "rule AhuntBrokerLostData": "the broker keeps its data",
    "rule AhuntScorerNoModel": "the scorer serves a model",
    "rule AhuntModelRefused": "no version is refused",
    "rule AhuntRetrainFailing": "retraining does not fail three times",
    "rule AhuntRetrainStale": "the last success is recent",
    "rule AhuntFeedbackServerErrors": "no 5xx",
    "rule AhuntFeedbackStoreErrors": "Redis works",
    "rule AhuntFeedbackRedisNotDurable": "the test Redis has appendfsync always",
    "rule AhuntFeedbackOutboxBacklog": "the outbox drains",
    "rule AhuntServiceDown": "every service is up",
    "rule AhuntScorerAbsent": "the scorer is scraped",
    "ahunt-models / Model swaps and refused versions / B": "no version is refused",
    "ahunt-models / Gate rejections by reason / A": "the gate may accept the candidate",
    # TODO(lead): a (survey, outcome) series is created at 1 by its first run, and increase()
    # needs an earlier sample; pre-initialising the label sets in RetrainMetrics fixes that.
    "ahunt-models / annotation Retrain runs": "a first run of an outcome is not an increase",
}
# Labelled counters that exist only once their event happened (none does in this run).
MAY_BE_ABSENT = {
    "ahunt_scorer_model_load_failures_total": "no version is refused",
    "ahunt_retrain_gate_rejections_total": "the gate may accept the candidate",
}
if not any(
    "set_live_version_info(" in p.read_text().replace("def set_live_version_info(", "")
    for p in (ROOT / "services").rglob("*.py")
):
    # TODO(lead): no service exports the registry's live version yet (issue 8 puts it with the
    # retrain service: call services.common.registry.set_live_version_info). Strict once one does.
    MAY_BE_ABSENT["ahunt_registry_live_version_info"] = "no service exports it yet"
    MAY_BE_EMPTY["ahunt-models / Registry live version / A"] = "no service exports it yet"
SCRAPE_S = 1
USER = "ops-alice"


class Process:
    """An `ahunt` sub-command in the background, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = open(log, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=self._out, stderr=subprocess.STDOUT
        )

    def tail(self) -> str:
        return f"--- {self.log.name} ---\n" + self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def ahunt(*args: str) -> list[str]:
    return [sys.executable, "-m", "services.cli", *args]


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def wait_until(
    what: str, check: Callable[[], bool], timeout: float, processes: list[Process]
) -> None:
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        for p in processes:
            if p.proc.poll() is not None:
                pytest.fail(
                    f"{p.log.name} exited ({p.proc.returncode}) while waiting for "
                    f"{what}\n{p.tail()}"
                )
        try:
            if check():
                print(f"{what}: {time.monotonic() - started:.1f} s")
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}\n" + "\n".join(p.tail() for p in processes))


def scrape_config(ports: dict[str, int], prometheus_port: int) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with its targets pointed at the local processes, a short
    interval, and its rule files by absolute path."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = f"{SCRAPE_S}s"
    config["rule_files"] = [str(DEPLOY / "prometheus" / r) for r in config["rule_files"]]
    jobs = []
    for job in config["scrape_configs"]:
        name = job["job_name"].removeprefix("ahunt-")
        port = prometheus_port if name == "prometheus" else ports[name]
        jobs.append(
            {k: v for k, v in job.items() if not k.endswith("_sd_configs")}
            | {"static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        )
    config["scrape_configs"] = jobs
    return config


class Prometheus:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            body = get_json(url)
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{expr!r}: {exc.read().decode()}") from exc
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def value(self, expr: str) -> float:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else 0.0


@pytest.fixture
def stack(
    tmp_path: Path, kafka_bootstrap: str, model_root: Path
) -> Iterator[tuple[Prometheus, dict[str, Any], list[Process]]]:
    """Redis with a first model in its registry, the three services and Prometheus."""
    prometheus = prometheus_binary()
    processes: list[Process] = []
    with EmbeddedRedis() as redis_server:
        run_id = f"{time.monotonic_ns() % 10**9}"
        topic = f"deploy.alerts.{run_id}"
        ports = {"scorer": free_port(), "feedback": free_port(), "retrain": free_port()}
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "KAFKA_SESSION_TIMEOUT_MS": "3000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            # the scorer's librdkafka latency windows (a dashboard panel reads them)
            "KAFKA_STATISTICS_INTERVAL_MS": "1000",
            "REDIS_URL": redis_server.url,
            "OMP_NUM_THREADS": "1",
            "AHUNT_SCORER_INPUT_TOPICS": json.dumps([topic]),
            "AHUNT_SCORER_GROUP_ID": f"deploy-scorer-{run_id}",
            "AHUNT_SCORER_METRICS_PORT": str(ports["scorer"]),
            "AHUNT_SCORER_MODEL_DIR": str(tmp_path / "scorer-models"),
            "AHUNT_SCORER_BATCH_SIZE": "16",
            "AHUNT_SCORER_LAG_REFRESH_S": "0.5",
            "AHUNT_SCORER_USERS_REFRESH_S": "0.5",
            "AHUNT_SCORER_MODELS_REFRESH_S": "0.5",
            "AHUNT_FEEDBACK_HOST": "127.0.0.1",
            "AHUNT_FEEDBACK_PORT": str(ports["feedback"]),
            "AHUNT_FEEDBACK_EVENTS_TOPIC": f"deploy.feedback.{run_id}",
            "AHUNT_RETRAIN_METRICS_PORT": str(ports["retrain"]),
            "AHUNT_RETRAIN_WORK_DIR": str(tmp_path / "retrain"),
            "AHUNT_RETRAIN_REGISTRY_CACHE_DIR": str(tmp_path / "retrain-cache"),
            "AHUNT_RETRAIN_THREADS": "1",
            "AHUNT_RETRAIN_BOOTSTRAP_EPOCHS": "1",
            "AHUNT_RETRAIN_FINETUNE_EPOCHS": "1",
            "AHUNT_RETRAIN_MIN_EPOCH_SAMPLES": "32",
            "AHUNT_RETRAIN_MIN_NEW_LABELS": "2",
            "AHUNT_RETRAIN_INTERVAL_MINUTES": "600",
            "AHUNT_RETRAIN_POLL_S": "0.5",
        }
        client = store.connect(redis_server.url)
        token = add_user(client, USER)
        # A budget above the stream: every alert is delivered to the user (and can be labelled).
        store.save_profile(client, UserProfile(name=USER, budget=Budget(alerts=100_000)))
        prom_port = free_port()
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(scrape_config(ports, prom_port)))
        # The first model: the session's small real model, published and promoted in the
        # registry the way `ahunt models publish DIR --promote` does (compose uses `ahunt
        # bootstrap`, which trains one from packets: too slow for this test).
        registry = Registry(client, tmp_path / "ops-cache")
        registry.promote("ztf", registry.publish(model_root / "ztf" / "ztf-0001").version)
        try:
            processes += [
                Process(
                    [
                        prometheus,
                        f"--config.file={tmp_path / 'prometheus.yml'}",
                        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{prom_port}",
                        "--log.level=warn",
                    ],
                    env,
                    tmp_path / "prometheus.log",
                ),
                Process(ahunt("scorer"), env, tmp_path / "scorer.log"),
                Process(ahunt("feedback"), env, tmp_path / "feedback.log"),
                Process(ahunt("retrain", "--survey", "ztf"), env, tmp_path / "retrain.log"),
            ]
            prom = Prometheus(prom_port)

            def targets_up() -> bool:
                targets = get_json(f"{prom.url}/api/v1/targets")["data"]["activeTargets"]
                return len(targets) == 4 and all(t["health"] == "up" for t in targets)

            wait_until("every target up", targets_up, 60, processes)
            context = {
                "topic": topic,
                "token": token,
                "client": client,
                "env": env,
                "ports": ports,
                "registry": registry,
                "tmp": tmp_path,
            }
            yield prom, context, processes
        finally:
            for p in processes:  # SIGTERM to all first: they finish their work in parallel
                if p.proc.poll() is None:
                    p.proc.terminate()
            for p in processes:
                p.stop()
            client.close()


def post_json(url: str, body: dict[str, Any], token: str) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def upgrade_model_by_hand(registry: Registry, directory: Path) -> str:
    """docs/OPERATIONS.md's procedure (`ahunt models fetch`, `publish --promote`), through the
    same Registry calls: the live version copied out, published under a new version name,
    promoted (here the "new" model is the same network)."""
    live = registry.current("ztf")
    assert live is not None
    new = registry.next_version("ztf")
    target = directory / "ztf" / new
    shutil.copytree(registry.fetch("ztf", live), target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.update(version=new, parent_version=live)
    (target / "manifest.json").write_text(json.dumps(manifest))
    registry.promote("ztf", registry.publish(target).version)
    return new


def test_every_dashboard_query_and_alert_rule_runs_on_the_real_services(
    stack: tuple[Prometheus, dict[str, Any], list[Process]],
    kafka_bootstrap: str,
    ztf_payloads: list[bytes],
) -> None:
    prom, context, processes = stack
    feedback_url = f"http://127.0.0.1:{context['ports']['feedback']}"

    # Traffic: the sample alerts, one per message as `ahunt replay` sends them, and a poison one.
    t0 = time.monotonic()
    p = producer(KafkaSettings(), kafka_bootstrap)
    for payload in [*ztf_payloads, b"not an alert"]:
        p.produce(context["topic"], payload)
    assert p.flush(10) == 0
    del p
    print(f"replay: {time.monotonic() - t0:.1f} s")
    expected = len(ztf_payloads) + 1
    wait_until(
        "the scorer to consume every message",
        lambda: prom.value("sum(ahunt_scorer_alerts_consumed_total)") >= expected,
        45,
        processes,
    )
    assert prom.value('sum(ahunt_scorer_dead_letters_total{reason="bad_magic"})') == 1
    # One series for all users unless AHUNT_SCORER_METRICS_PER_USER asks (bounded series).
    assert prom.value('sum(ahunt_scorer_published_total{user="all"})') > 0

    # A model upgraded by hand: every scorer swaps to it.
    t0 = time.monotonic()
    new = upgrade_model_by_hand(context["registry"], context["tmp"] / "upgrade")
    print(f"upgrade: {time.monotonic() - t0:.1f} s")
    wait_until(
        f"the scorer to serve {new}",
        lambda: prom.value(f'max(ahunt_scorer_model_info{{version="{new}"}})') == 1,
        30,
        processes,
    )

    # Labels through the API (the retrain service starts on the second), and one 404.
    delivered = [k.decode() for k in context["client"].hkeys(keys.delivered_key(USER))]
    assert len(delivered) == len(ztf_payloads)
    for alert_id, label in zip(delivered[:3], ("supernova", "supernova", "artefact"), strict=True):
        status = post_json(
            f"{feedback_url}/v1/feedback",
            {"alert_id": alert_id, "label": label, "interesting": True},
            context["token"],
        )
        assert status == 201
    assert (
        post_json(f"{feedback_url}/v1/feedback", {"alert_id": "0", "label": "x"}, context["token"])
        == 404
    )
    wait_until(
        "a retrain run on the labels",
        lambda: (
            prom.value('sum(ahunt_retrain_runs_total{outcome=~"promoted|rejected|failed"})') >= 1
        ),
        60,
        processes,
    )
    time.sleep(3 * SCRAPE_S)  # a few more scrapes, so every rate() has two samples after it

    # The rules load and evaluate without error.
    groups = get_json(f"{prom.url}/api/v1/rules")["data"]["groups"]
    evaluated = {r["name"]: r for g in groups for r in g["rules"]}
    assert {
        q.where.removeprefix("rule ") for q in all_queries() if q.where.startswith("rule ")
    } == set(evaluated)
    assert all(r["health"] == "ok" for r in evaluated.values()), [
        (n, r.get("lastError")) for n, r in evaluated.items() if r["health"] != "ok"
    ]

    # Every query: runs, and returns data unless allow-listed; the series it reads exist.
    exported = {
        s["__name__"]
        for s in get_json(
            f"{prom.url}/api/v1/series?match[]=" + urllib.parse.quote('{__name__=~".+"}')
        )["data"]
    }
    problems = []
    queries: list[Query] = all_queries()
    for q in queries:
        missing = {m for m in metric_names(q.expr) if m not in exported} - set(MAY_BE_ABSENT)
        if missing:
            problems.append(f"{q.where}: no such series exported: {sorted(missing)}")
            continue
        if not prom.query(q.expr) and q.where not in MAY_BE_EMPTY:
            problems.append(f"{q.where}: no data: {q.expr}")
    stale = set(MAY_BE_EMPTY) - {q.where for q in queries}
    assert not stale, f"allow-list names queries that no longer exist: {sorted(stale)}"
    assert not problems, "\n".join(problems) + "\n" + "\n".join(p.tail() for p in processes)

    # The image's health check against the live services.
    for service in ("scorer", "feedback", "retrain"):
        variable = {
            "scorer": "AHUNT_SCORER_METRICS_PORT",
            "feedback": "AHUNT_FEEDBACK_PORT",
            "retrain": "AHUNT_RETRAIN_METRICS_PORT",
        }[service]
        env = {**os.environ, variable: str(context["ports"][service])}
        ok = subprocess.run(
            [sys.executable, str(DEPLOY / "healthcheck.py"), service, "--ready"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert ok.returncode == 0, ok.stdout + ok.stderr
        env[variable] = str(free_port())  # nothing listens there
        down = subprocess.run(
            [sys.executable, str(DEPLOY / "healthcheck.py"), service],
            env=env,
            capture_output=True,
            text=True,
        )
        assert down.returncode == 1, down.stdout
