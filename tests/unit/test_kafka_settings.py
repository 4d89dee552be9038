"""Kafka client settings: SASL and TLS reach librdkafka's configuration, and inconsistent
combinations are refused at start rather than failing later as a connection error."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.common.settings import KafkaSettings


def test_sasl_ssl_with_client_certificate() -> None:
    settings = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc-scorer",
        sasl_password="s3cret",
        ssl_ca_location=Path("/etc/ahunt/tls/ca.pem"),
        ssl_certificate_location=Path("/etc/ahunt/tls/client.pem"),
        ssl_key_location=Path("/etc/ahunt/tls/client.key"),
        ssl_key_password="k3y",
    )
    assert settings.client_config("kafka:9093") == {
        "bootstrap.servers": "kafka:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc-scorer",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/ahunt/tls/ca.pem",
        "ssl.certificate.location": "/etc/ahunt/tls/client.pem",
        "ssl.key.location": "/etc/ahunt/tls/client.key",
        "ssl.key.password": "k3y",
        "ssl.endpoint.identification.algorithm": "https",
        "log_level": 4,
    }
    assert "s3cret" not in repr(settings) and "k3y" not in repr(settings)


def test_tls_options_only_apply_to_tls_protocols() -> None:
    config = KafkaSettings(ssl_ca_location=Path("/ca.pem")).client_config("k:9092")
    assert config == {
        "bootstrap.servers": "k:9092",
        "security.protocol": "PLAINTEXT",
        "log_level": 4,
    }


def test_librdkafka_info_lines_stay_out_of_users_output() -> None:
    """An admin client destroyed with a queued event printed "%6|...|BGQUEUE|... Purging 1
    unserved events" in the middle of ``ahunt demo``: info-level lines are off by default."""
    assert KafkaSettings().client_config("k:9092")["log_level"] == 4
    assert KafkaSettings(log_level=7).client_config("k:9092")["log_level"] == 7


def test_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("KAFKA_SSL_CA_LOCATION", "/run/ca.pem")
    monkeypatch.setenv("KAFKA_SSL_ENDPOINT_IDENTIFICATION", "false")
    config = KafkaSettings().client_config("k:9093")
    assert config["ssl.ca.location"] == "/run/ca.pem"
    assert config["ssl.endpoint.identification.algorithm"] == "none"


@pytest.mark.parametrize(
    "fields",
    [
        {"security_protocol": "SASL_SSL"},  # no credential
        {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512"},
        {"security_protocol": "SSL", "ssl_certificate_location": Path("/c.pem")},  # no key
        {"sasl_mechanism": "GSSAPI"},
    ],
)
def test_inconsistent_settings_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        KafkaSettings(**fields)  # type: ignore[arg-type]
