"""Feedback API settings (env prefix ``AHUNT_FEEDBACK_``; the Kafka and Redis sections are
shared with the other services, ``services.common.settings``, and start embedded servers when
unset)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import Settings
from services.common.topics import FEEDBACK


class FeedbackSettings(Settings):
    """The feedback API (``ahunt feedback``)."""

    model_config = SettingsConfigDict(env_prefix="AHUNT_FEEDBACK_")

    host: str = Field(default="127.0.0.1", description="bind address (0.0.0.0 in a container)")
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes")
    embedded_redis_dir: Path | None = Field(
        default=None,
        description="with REDIS_URL unset: keep the embedded Redis's AOF here so labels survive "
        "a restart (unset: a temporary directory, removed at exit)",
    )
    require_durable_redis: bool = Field(
        default=False,
        description="refuse to start unless Redis has appendonly yes + appendfsync always "
        "(otherwise a loud warning)",
    )
    redis_timeout_s: float = Field(default=5.0, gt=0, description="Redis socket timeout")
    auth_cache_s: float = Field(
        default=5.0,
        ge=0.0,
        le=60.0,
        description="how long a process remembers a valid token (saves a Redis round trip per "
        "request); a revoked token keeps working up to this long; 0 = always ask Redis",
    )
    auth_failures_burst: int = Field(
        default=20,
        ge=1,
        description="failed authentications a client address may make before it is slowed down",
    )
    auth_failures_per_s: float = Field(
        default=0.2,
        ge=0.0,
        description="failed authentications an address regains per second (0: no limit)",
    )
    auth_failures_max_addresses: int = Field(
        default=100_000, ge=100, description="addresses remembered before idle ones are dropped"
    )
    retry_after_s: int = Field(default=1, ge=1, description="Retry-After of 503 and 429 answers")
    metrics_classes: list[str] = Field(
        default_factory=list,
        description="the taxonomy: class names that always have their own series of "
        "ahunt_feedback_labels_total (JSON list; 'reserve' always has one)",
    )
    metrics_other_classes: int = Field(
        default=20,
        ge=0,
        le=1_000,
        description="further class names (first come) with their own series; later ones are "
        "counted as 'other' (labels are users' input: bounded series)",
    )
    # Per token (user) and per process: N workers allow up to N times this.
    rate_limit_per_s: float = Field(default=50.0, ge=0.0, description="0 disables rate limiting")
    rate_limit_burst: int = Field(default=100, ge=1)
    max_body_bytes: int = Field(default=16_384, ge=256, description="larger bodies get 413")
    events_topic: str = FEEDBACK
    outbox_batch: int = Field(default=500, ge=1, le=100_000)
    outbox_poll_s: float = Field(
        default=1.0, gt=0, description="outbox check interval when no label woke the publisher"
    )
    outbox_flush_timeout_s: float = Field(default=10.0, gt=0)
    classes_scan_limit: int = Field(
        default=500, ge=0, description="cached alerts sampled for the live model's classes"
    )
    kafka_durable: bool | None = Field(
        default=None,
        description="reported by /readyz: false for a memory-only broker (`ahunt up` sets it for "
        "the embedded one); unset: not known",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = Field(default=False, description="uvicorn access log (metrics count all)")
    # The Oracle's desk (/desk) and the live stream (/v1/me/stream).
    session_ttl_s: int = Field(
        default=12 * 3600, ge=60, description="desk sign-in lifetime (the session cookie's)"
    )
    trusted_origins: list[str] = Field(
        default_factory=list,
        description="extra Origin values (scheme://host[:port]) allowed to send cookie-"
        "authenticated writes, e.g. the public URL behind a proxy that rewrites Host",
    )
    stream_max_per_user: int = Field(
        default=4, ge=1, description="open /v1/me/stream connections per user (more: 429)"
    )
    stream_max_total: int = Field(
        default=64, ge=1, description="open /v1/me/stream connections per process (more: 503)"
    )
    stream_heartbeat_s: float = Field(
        default=15.0, gt=0, description="idle stream: a comment line this often keeps proxies open"
    )
