"""The deployments configure what docs/SECURITY.md promises, checked offline: Apache Kafka with
SASL/SCRAM over TLS, the StandardAuthorizer and no access without an ACL; each service its own
Kafka principal and Redis user (the same ones the code's grants and roles name), created by a
setup job through ``ahunt kafka-acls apply`` and ``ahunt redis-acls``; the model signing key
given to the scorers and retrain only; the secrets script makes every value compose needs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from services.common import kafka_acl, redis_acl
from services.common.settings import ServiceSecretsSettings
from services.common.signing import check_key
from services.tools.stack import SERVICE_REDIS_USERS
from tests.deploy.deploy_refs import DEPLOY, load_yaml_documents

COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::[?-][^}]*)?\}")
# Who each ahunt container is on Kafka (None: it uses no Kafka).
KAFKA_PRINCIPALS = {
    "scorer": kafka_acl.SERVICE_PRINCIPALS["scorer"],
    "feedback": kafka_acl.SERVICE_PRINCIPALS["feedback"],
    "kafka-setup": kafka_acl.ADMIN_PRINCIPAL,
    "replay": kafka_acl.ADMIN_PRINCIPAL,  # plays the survey: no service may write the input
    "retrain": None,
    "bootstrap": None,
    "redis-acl": None,
}
SIGNING = {"scorer", "retrain", "bootstrap"}  # hold AHUNT_MODEL_SIGNING_KEY; nobody else does
REDIS_ROLE = {**SERVICE_REDIS_USERS, "bootstrap": SERVICE_REDIS_USERS["retrain"]}


def properties() -> dict[str, str]:
    text = (DEPLOY / "kafka" / "server.properties").read_text()
    pairs = (ln.split("=", 1) for ln in text.splitlines() if ln and not ln.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    out = tmp_path_factory.mktemp("deploy")
    subprocess.run(
        ["sh", str(DEPLOY / "make-secrets.sh"), str(out)], check=True, capture_output=True
    )
    return out


@pytest.fixture(scope="module")
def env(secrets_dir: Path) -> dict[str, str]:
    lines = (secrets_dir / ".env").read_text().splitlines()
    return dict(ln.split("=", 1) for ln in lines if ln and not ln.startswith("#"))


@pytest.fixture(scope="module")
def services(env: dict[str, str]) -> dict[str, Any]:
    """compose.yaml as `docker compose` sees it with make-secrets.sh's .env (a missing variable
    fails here, as `:?` makes compose fail)."""
    text = COMPOSE.read_text()
    missing = sorted({m for m in VARIABLE.findall(text) if m not in env} - {"AHUNT_ALERTS_DIR"})
    assert not missing, f"compose needs variables make-secrets.sh does not make: {missing}"
    text = VARIABLE.sub(lambda m: env.get(m.group(1), "x"), text)
    return dict(yaml.safe_load(text)["services"])


def test_kafka_is_sasl_scram_over_tls_and_denies_what_no_acl_allows() -> None:
    props = properties()
    protocols = dict(p.split(":") for p in props["listener.security.protocol.map"].split(","))
    assert set(protocols.values()) == {"SASL_SSL"}  # no PLAINTEXT or SSL-only listener
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert f"User:{kafka_acl.ADMIN_PRINCIPAL}" in props["super.users"].split(";")
    assert props["auto.create.topics.enable"] == "false"  # topics: kafka-acls apply, users add
    start = (DEPLOY / "kafka" / "start.sh").read_text()
    assert f'--add-scram "SCRAM-SHA-512=[name={kafka_acl.ADMIN_PRINCIPAL},' in start


def test_every_compose_service_is_its_own_kafka_principal(services: dict[str, Any]) -> None:
    ours = {n: s for n, s in services.items() if str(s.get("image", "")).startswith("ahunt")}
    assert set(ours) == set(KAFKA_PRINCIPALS)
    for name, principal in KAFKA_PRINCIPALS.items():
        environment = ours[name].get("environment", {})
        if principal is None:
            assert not any(k.startswith("KAFKA_") for k in environment), name
            continue
        assert environment["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", name
        assert environment["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512", name
        assert environment["KAFKA_SASL_USERNAME"] == principal, name
        mounts = [v.split(":")[1] for v in ours[name].get("volumes", [])]
        assert environment["KAFKA_SSL_CA_LOCATION"] in mounts, name
    assert ours["kafka-setup"]["command"] == ["kafka-acls", "apply"]
    for name in ("scorer", "feedback"):  # not before their principals and ACLs exist
        assert ours[name]["depends_on"]["kafka-setup"]["condition"] == (
            "service_completed_successfully"
        )
    setup = ours["kafka-setup"]["environment"]
    assert (
        setup["AHUNT_SECRET_KAFKA_SCORER_PASSWORD"]
        == (ours["scorer"]["environment"]["KAFKA_SASL_PASSWORD"])
    )
    assert (
        setup["AHUNT_SECRET_KAFKA_FEEDBACK_PASSWORD"]
        == (ours["feedback"]["environment"]["KAFKA_SASL_PASSWORD"])
    )


def test_every_compose_service_is_its_own_redis_user(services: dict[str, Any]) -> None:
    redis_args = services["redis"]["command"]
    aclfile = redis_args[redis_args.index("--aclfile") + 1]
    assert services["redis-acl"]["command"] == ["redis-acls", "write", aclfile]
    handed_out = {
        user: password
        for user, password in _secrets(services["redis-acl"]["environment"])
        .redis_passwords()
        .items()
    }
    assert set(handed_out) == {r.user for r in redis_acl.ROLES}
    for name, variables in REDIS_ROLE.items():
        environment = services[name]["environment"]
        for variable, role in variables.items():
            url = urlsplit(environment[variable])
            assert url.username == role.user, (name, variable)
            assert unquote(url.password or "") == handed_out[role.user], (name, variable)
        assert not set(environment) & {"REDIS_URL", "REDIS_REGISTRY_URL"} - set(variables), name
    assert services["redis"]["environment"]["REDISCLI_AUTH"] == handed_out["ahunt-admin"]


def test_only_publishers_and_scorers_hold_the_signing_key(
    services: dict[str, Any], env: dict[str, str]
) -> None:
    for name, service in services.items():
        holds = "AHUNT_MODEL_SIGNING_KEY" in service.get("environment", {})
        assert holds == (name in SIGNING), name
    key = env["AHUNT_MODEL_SIGNING_KEY"]
    assert len(check_key(key, local=False)) == 32  # a real key, accepted off this machine


def test_make_secrets_makes_a_ca_and_a_broker_certificate_and_keeps_them(
    secrets_dir: Path, env: dict[str, str]
) -> None:
    assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in env.values())
    tls = secrets_dir / "tls"
    pem = (tls / "kafka.pem").read_text()
    assert pem.startswith("-----BEGIN PRIVATE KEY-----") and pem.count("CERTIFICATE-----") == 4
    leaf = subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "subjectAltName"],
        input=pem[pem.index("-----BEGIN CERTIFICATE-----") :],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:kafka" in leaf and "DNS:localhost" in leaf
    before = (secrets_dir / ".env").read_text(), pem
    subprocess.run(["sh", str(DEPLOY / "make-secrets.sh"), str(secrets_dir)], check=True)
    assert ((secrets_dir / ".env").read_text(), (tls / "kafka.pem").read_text()) == before
    ignored = (DEPLOY / "tls" / ".gitignore").read_text()
    assert "*" in ignored.split()


def _secrets(environment: dict[str, str]) -> ServiceSecretsSettings:
    fields = {
        name.removeprefix("AHUNT_SECRET_").lower(): value
        for name, value in environment.items()
        if name.startswith("AHUNT_SECRET_")
    }
    return ServiceSecretsSettings(**fields)


# --- Kubernetes ------------------------------------------------------------------------------


def k8s() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [d for r in kustomization["resources"] for d in load_yaml_documents(K8S / r)]


def _secret(objects: list[dict[str, Any]], name: str) -> dict[str, str]:
    found = [o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == name]
    assert found, f"no Secret {name}"
    return dict(found[0]["stringData"])


def test_k8s_every_service_reads_only_its_own_secret() -> None:
    objects = k8s()
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    setup = _secret(objects, "ahunt-setup-secrets")
    handed_out = _secrets(setup)
    for service, variables in SERVICE_REDIS_USERS.items():
        (container,) = deployments[f"ahunt-{service}"]["spec"]["template"]["spec"]["containers"]
        refs = [s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s]
        assert refs == [f"ahunt-{service}-secrets"], service
        secret = _secret(objects, refs[0])
        for variable, role in variables.items():
            url = urlsplit(secret[variable])
            assert url.username == role.user, (service, variable)
            assert url.password == handed_out.redis_passwords()[role.user], (service, variable)
        principal = kafka_acl.SERVICE_PRINCIPALS.get(service)
        assert secret.get("KAFKA_SASL_USERNAME") == principal, service
        if principal is not None:
            assert secret["KAFKA_SASL_PASSWORD"] == handed_out.kafka_passwords()[service]
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/etc/ahunt/kafka-ca" in mounts, service
        assert ("AHUNT_MODEL_SIGNING_KEY" in secret) == (service != "feedback"), service
    keys = {
        _secret(objects, f"ahunt-{s}-secrets")["AHUNT_MODEL_SIGNING_KEY"]
        for s in ("scorer", "retrain")
    }
    assert len(keys) == 1  # the same key signs and verifies
    with pytest.raises(ValueError, match="placeholder"):  # a service refuses the template's
        check_key(keys.pop(), local=False)


def test_k8s_setup_job_creates_identities_from_the_code() -> None:
    objects = k8s()
    (job,) = [o for o in objects if o["kind"] == "Job"]
    spec = job["spec"]["template"]["spec"]
    commands = [c["args"] for c in (*spec["initContainers"], *spec["containers"])]
    assert commands == [["kafka-acls", "apply"], ["redis-acls", "apply"]]
    setup = _secret(objects, "ahunt-setup-secrets")
    assert setup["KAFKA_SASL_USERNAME"] == kafka_acl.ADMIN_PRINCIPAL
    secrets = _secrets(setup)
    assert set(secrets.redis_passwords()) == {r.user for r in redis_acl.ROLES}
    assert set(secrets.kafka_passwords()) == set(kafka_acl.SERVICE_PRINCIPALS)
    config = next(o for o in objects if o["metadata"]["name"] == "ahunt-config")["data"]
    assert config["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["KAFKA_SSL_CA_LOCATION"].startswith("/etc/ahunt/kafka-ca/")
