"""The deployment files parse and refer only to what the code has: `ahunt` sub-commands, settings
(environment variable names), image targets, files; the Kubernetes objects validate against the
API schemas, and the serving image's install runs without the training dependencies."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.cli import build_parser
from services.common.config_doc import all_env_names
from tests.deploy.deploy_refs import (
    DEPLOY,
    IMAGE,
    ROOT,
    load_yaml_documents,
)

COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
# Environment the services get that no settings class reads, on purpose.
ENV_NOT_SETTINGS: set[str] = set()
ENV_PREFIXES = ("AHUNT_", "KAFKA_", "REDIS_")


def subcommands() -> set[str]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    raise AssertionError("ahunt has no sub-commands")


def check_command(args: list[str], where: str) -> None:
    """``args`` (after the ``ahunt`` entry point) parse as an existing sub-command."""
    assert args, f"{where}: no command"
    if args[0] not in subcommands():
        raise AssertionError(f"{where}: `ahunt {args[0]}` is not a sub-command of ahunt")
    try:
        build_parser().parse_args(args)
    except SystemExit as exc:
        raise AssertionError(f"{where}: `ahunt {' '.join(args)}` does not parse") from exc


def check_env(names: set[str], where: str) -> None:
    ours = {n for n in names if n.startswith(ENV_PREFIXES)} - ENV_NOT_SETTINGS
    unknown = ours - all_env_names(strict=True)
    assert not unknown, f"{where}: no settings class reads {sorted(unknown)}"


def test_every_deploy_yaml_parses() -> None:
    files = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    assert len(files) >= 10
    for path in files:
        assert load_yaml_documents(path), f"{path} is empty"


# --- compose ---------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def ahunt_services() -> dict[str, dict[str, Any]]:
    return {
        n: s for n, s in compose()["services"].items() if str(s.get("image", "")).startswith(IMAGE)
    }


def test_compose_runs_kafka_kraft_redis_aof_and_two_scorers_in_one_group() -> None:
    services = compose()["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    properties = (DEPLOY / "kafka" / "server.properties").read_text()
    assert "process.roles=broker,controller" in properties  # KRaft, no ZooKeeper
    assert not any("zookeeper" in name for name in services)
    redis_args = services["redis"]["command"]
    pairs = dict(zip(redis_args[1::2], redis_args[2::2], strict=False))
    assert pairs["--appendonly"] == "yes" and pairs["--appendfsync"] == "always"
    scorer = services["scorer"]
    assert scorer["deploy"]["replicas"] == 2 and scorer["environment"]["AHUNT_SCORER_GROUP_ID"]
    partitions = int(scorer["environment"]["KAFKA_TOPIC_PARTITIONS"])
    assert scorer["deploy"]["replicas"] <= partitions  # a replica without a partition idles
    for name in ("scorer", "feedback", "retrain", "prometheus", "grafana"):
        assert name in services


@pytest.mark.parametrize("name", sorted(ahunt_services()))
def test_compose_service_command_and_environment_exist(name: str) -> None:
    service = ahunt_services()[name]
    target = service["build"]["target"]
    assert service["image"] == f"{IMAGE}:{target}"
    assert f" AS {target}\n" in (ROOT / "Dockerfile").read_text(), f"no Dockerfile target {target}"
    assert (COMPOSE.parent / service["build"]["context"] / "Dockerfile").exists()
    check_env(set(service.get("environment", {})), f"compose service {name}")
    check_command(list(service["command"]), f"compose service {name}")


def test_compose_mounts_exist_and_feed_prometheus_and_grafana() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./tls/"):  # made on the host by make-secrets.sh
                script = (COMPOSE.parent / "make-secrets.sh").read_text()
                assert f'"$TLS/{source.removeprefix("./tls/")}"' in script, source
            elif source.startswith((".", "/")) and "${" not in source:
                assert (COMPOSE.parent / source).exists(), f"{name}: {source} missing"
    prom = " ".join(services["prometheus"]["volumes"])
    assert "./prometheus:/etc/prometheus" in prom
    grafana = services["grafana"]["volumes"]
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/ahunt.yml").read_text())[
        "providers"
    ][0]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in grafana
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in grafana


# --- Kubernetes ------------------------------------------------------------------------------


def k8s_objects(directory: Path = K8S) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    objects = []
    for resource in kustomization["resources"]:
        objects += load_yaml_documents(directory / resource)
    return objects


def optional_objects() -> list[dict[str, Any]]:
    return [d for p in sorted((K8S / "optional").glob("*.yaml")) for d in load_yaml_documents(p)]


BUILTIN_API = re.compile(r"^(v1|apps/v1|batch/v1|policy/v1|autoscaling/v2)$")


def test_k8s_builtin_objects_validate_against_the_api_schema() -> None:
    from kubernetes_validate import utils

    objects = [*k8s_objects(), *optional_objects()]
    builtin = [o for o in objects if BUILTIN_API.match(o["apiVersion"])]
    assert {o["kind"] for o in builtin} >= {
        "Deployment",
        "ConfigMap",
        "Secret",
        "Service",
        "CronJob",
    }
    for obj in builtin:
        # strict: an unknown (misspelt) field is an error, not silently dropped by the server
        utils.validate(obj, "1.30.0", strict=True)


def test_k8s_validation_catches_a_misspelt_field() -> None:
    from kubernetes_validate import utils

    deployment = next(o for o in k8s_objects() if o["kind"] == "Deployment")
    bad = {**deployment, "spec": {**deployment["spec"], "replica": 3}}
    with pytest.raises(utils.ValidationError):
        utils.validate(bad, "1.30.0", strict=True)


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return list(spec.get("template", {}).get("spec", {}).get("containers", []))


def test_k8s_containers_run_existing_commands_with_known_settings() -> None:
    objects = [*k8s_objects(), *optional_objects()]
    config = {
        (o["kind"], o["metadata"]["name"]): {**o.get("data", {}), **o.get("stringData", {})}
        for o in objects
        if o["kind"] in ("ConfigMap", "Secret")
    }
    seen = 0
    for obj in objects:
        for c in containers(obj):
            where = f"{obj['kind']}/{obj['metadata']['name']}/{c['name']}"
            assert IMAGE in c["image"], where
            assert c["image"].split(":")[-1] in ("serving", "training"), where
            names = {e["name"] for e in c.get("env", [])}
            for source in c.get("envFrom", []):
                kind, ref = (
                    ("ConfigMap", source["configMapRef"])
                    if "configMapRef" in source
                    else ("Secret", source["secretRef"])
                )
                assert (kind, ref["name"]) in config, f"{where}: no {kind} {ref['name']}"
                names |= set(config[(kind, ref["name"])])
            check_env(names, where)
            check_command(list(c["args"]), where)
            seen += 1
    assert seen >= 4


def test_k8s_scorer_autoscaling_follows_the_group_lag_within_the_partitions() -> None:
    objects = k8s_objects()
    scaled = next(o for o in objects if o["kind"] == "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    target = scaled["spec"]["scaleTargetRef"]["name"]
    deployment = next(
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == target
    )
    assert containers(deployment)[0]["args"] == ["scorer"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    config = {k: v for o in objects if o["kind"] == "ConfigMap" for k, v in o["data"].items()}
    assert trigger["metadata"]["consumerGroup"] == config["AHUNT_SCORER_GROUP_ID"]
    assert trigger["metadata"]["topic"] in yaml.safe_load(config["AHUNT_SCORER_INPUT_TOPICS"])
    assert trigger["metadata"]["bootstrapServers"] == config["KAFKA_BOOTSTRAP_SERVERS"]
    assert trigger["metadata"]["allowIdleConsumers"] == "false"
    partitions = int(config["KAFKA_TOPIC_PARTITIONS"])
    assert scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"] <= partitions
    auth = next(o for o in objects if o["kind"] == "TriggerAuthentication")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    secrets = {
        (o["metadata"]["name"], k)
        for o in objects
        if o["kind"] == "Secret"
        for k in o["stringData"]
    }
    for ref in auth["spec"]["secretTargetRef"]:
        assert (ref["name"], ref["key"]) in secrets


def test_k8s_scrape_jobs_match_the_rules() -> None:
    monitor = next(o for o in k8s_objects() if o["kind"] == "PodMonitor")
    jobs = set(monitor["spec"]["selector"]["matchExpressions"][0]["values"])
    assert jobs == {"ahunt-scorer", "ahunt-feedback", "ahunt-retrain"}
    ports = {p["port"] for p in monitor["spec"]["podMetricsEndpoints"]}
    for obj in k8s_objects():
        if obj["kind"] == "Deployment":
            labels = obj["spec"]["template"]["metadata"]["labels"]
            assert labels[monitor["spec"]["jobLabel"]] in jobs
            assert {p["name"] for c in containers(obj) for p in c["ports"]} & ports


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_k8s_kustomization_builds() -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, check=True
    ).stdout
    kinds = {d["kind"] for d in yaml.safe_load_all(out) if d}
    assert {"Deployment", "ScaledObject", "PodMonitor", "Namespace"} <= kinds


# --- Dockerfile ------------------------------------------------------------------------------


def dockerfile_stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    stages: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if m:
            current = m.group(1)
            stages[current] = [line]
        elif current:
            stages[current].append(line)
    return stages


def lineage(stages: dict[str, list[str]], name: str) -> list[str]:
    """The instructions of a stage and of the stages it is built FROM."""
    parent = stages[name][0].split()[1]
    return (lineage(stages, parent) if parent in stages else []) + stages[name]


def test_dockerfile_serving_and_training_targets() -> None:
    stages = dockerfile_stages()
    for target, command in (("serving", "scorer"), ("training", "retrain")):
        lines = lineage(stages, target)
        text = "\n".join(lines)
        users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
        assert users and users[-1] not in ("root", "0"), f"{target} runs as root"
        assert 'ENTRYPOINT ["ahunt"]' in text
        assert any(ln.startswith("HEALTHCHECK") for ln in lines)
        cmd = [ln for ln in lines if ln.startswith("CMD ")][-1]
        assert cmd == f'CMD ["{command}"]'
        check_command([command], f"Dockerfile {target}")
    serving = "\n".join(lineage(stages, "serving"))
    training = "\n".join(lineage(stages, "training")) + "\n".join(stages["deps-training"])
    assert "torch" not in serving.replace('! python -c "import torch"', "")
    # The serving image carries no benchmarks: the serving path never imports bench/.
    assert "COPY bench/" not in serving and "COPY bench/" in training
    assert "torchvision" not in training.replace("! pip show torchvision", "")
    assert "torch==${TORCH_VERSION}" in training and "ARG TORCH_VERSION=2.13.0" in training
    assert "download.pytorch.org/whl/cpu" in training


def test_dockerfile_copies_only_files_that_exist_and_are_in_the_context() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {ln[1:].rstrip("/") for ln in ignore if ln.startswith("!")}
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    copies = [ln.split() for ln in text.splitlines() if ln.startswith("COPY ")]
    sources = [
        w
        for words in copies
        if not any(w.startswith("--from") for w in words)
        for w in words[1:-1]
        if not w.startswith("--")
    ]
    assert sources
    for source in sources:
        path = source.rstrip("/")
        assert (ROOT / path).exists(), f"COPY {source}: missing"
        assert path in allowed, f"COPY {source}: excluded by .dockerignore"


BLOCK_TRAINING = (
    "import sys\n"
    "for name in ('torch', 'sklearn', 'onnx', 'onnxscript', 'matplotlib', 'coniferest', 'bench'):\n"
    "    sys.modules[name] = None  # as in the serving image: these are not installed\n"
)


def test_serving_image_commands_work_without_training_dependencies() -> None:
    """The slim target installs the base dependencies only: the CLI and the serving entry
    points must import and parse without torch, scikit-learn, onnx or matplotlib."""
    code = BLOCK_TRAINING + (
        "from services.cli import build_parser\n"
        "import services.scorer.__main__\n"
        "p = build_parser()\n"
        "for args in (['scorer'], ['replay', 'x.avro'], ['decode', 'x.avro']):\n"
        "    p.parse_args(args)\n"
        "assert 'bench' not in p._subparsers._group_actions[0].choices  # no bench/ there\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_healthcheck_reads_the_scorer_model_gauge() -> None:
    sys.path.insert(0, str(DEPLOY))
    try:
        import healthcheck
    finally:
        sys.path.remove(str(DEPLOY))
    text = (
        "# HELP ahunt_scorer_model_info 1 for the model version in use\n"
        'ahunt_scorer_model_info{survey="ztf",version="ztf-0001"} 0.0\n'
    )
    assert not healthcheck.serves_model(text)
    assert healthcheck.serves_model(text + 'ahunt_scorer_model_info{survey="ztf",version="b"} 1.0')
    assert healthcheck.check("replay", ready=False)[0]  # no HTTP port: alive is healthy
    assert set(healthcheck.PORTS) <= subcommands()
    variables = {v for v, _ in healthcheck.PORTS.values()}
    check_env(variables, "deploy/healthcheck.py")


def test_the_cli_parses_without_importing_the_learning_stack() -> None:
    """Every `ahunt` process (scorer replicas included) builds the whole parser: importing torch
    and scikit-learn there cost ~2.5 s and hundreds of MB per process for nothing."""
    code = (
        "import sys\n"
        "from services.cli import parse_args\n"
        "args = parse_args(['scorer'])\n"
        "heavy = [m for m in ('torch', 'sklearn', 'onnx') if m in sys.modules]\n"
        "print(args.command, heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "scorer []", out.stderr[-2000:]


def test_ahunt_help_imports_no_command_module() -> None:
    """`ahunt --help` (and building the parser in every process) imports no sub-command: each
    command's module loads when that command is parsed."""
    code = (
        "import sys\n"
        "from services.cli import build_parser\n"
        "build_parser().format_help()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('services', 'models', 'bench')"
        " and m not in ('services', 'services.cli', 'bench', 'bench.commands')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr[-2000:]


def test_the_services_log_at_info_and_the_demo_only_warnings() -> None:
    from services.cli import parse_args

    oracle = ["oracle", "--user", "u", "--token", "t", "--truth", "t.csv"]
    for args in (
        ["scorer"],
        ["feedback"],
        ["retrain"],
        ["bootstrap", "--from", "x"],
        ["up"],
        oracle,
    ):
        assert parse_args(args).log_level == "INFO", args
    assert parse_args(["demo"]).log_level == "WARNING"
    assert parse_args(["replay", "x.avro"]).log_level is None  # prints its own lines


def test_bench_paper_options_are_parsed_in_a_second_step() -> None:
    from services.cli import parse_args

    args = parse_args(["bench", "paper", "--dataset", "mnist", "--seeds", "2"])
    assert (args.command, args.bench, args.dataset, args.seeds) == ("bench", "paper", "mnist", 2)
    with pytest.raises(SystemExit):
        parse_args(["bench", "paper", "--no-such-option"])
    with pytest.raises(SystemExit):
        parse_args(["scorer", "--no-such-option"])
