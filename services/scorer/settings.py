"""Scorer settings (env prefix ``AHUNT_SCORER_``; the Kafka and Redis sections are shared:
``services.common.settings``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import Settings
from services.common.topics import ALERTS


class ScorerSettings(Settings):
    """The scorer (``ahunt scorer``)."""

    model_config = SettingsConfigDict(env_prefix="AHUNT_SCORER_")

    input_topics: list[str] = Field(default_factory=lambda: [ALERTS])
    group_id: str = "ahunt-scorer"
    model_dir: Path = Field(
        default=Path("var/models"),
        description="<survey>/<version>/ model dirs and <survey>/CURRENT",
    )
    batch_size: int = Field(default=256, ge=1, le=10_000)
    # A batch gathers alerts for this long unless batch_size arrive first: at a steady rate it
    # sets how many alerts share a batch's fixed costs (a produce request, a commit, a Redis
    # transaction, the broker's fetches), so it trades latency for CPU per alert. Measured at
    # 250 alerts/s on 2 cores (docs/PERFORMANCE.md): 0.02 s p99 186-277 ms, scorer path 3.7-4.0
    # ms CPU per alert; 0.05 s p99 174-202 ms, 3.1-3.2 ms; 0.2 s (the old default) p99 612-945 ms.
    poll_timeout_s: float = Field(
        default=0.05,
        gt=0,
        description="how long a batch gathers alerts when fewer than batch_size are waiting: "
        "longer costs latency, saves CPU per alert at low rates",
    )
    # The scorer's own fetch wait (not KAFKA_FETCH_WAIT_MAX_MS, kept low for the other services'
    # single messages): each fetch costs the broker CPU whether or not data came, and a Tansu
    # broker answers one only at the end of its wait. Measured at 250 alerts/s with a 0.05 s
    # batch gathering: 100 ms instead of 20 took 16% off the scorer path's CPU per alert, p50
    # +15 ms, p99 unchanged (184-228 vs 165-237 ms); on Apache Kafka it only bounds idle polls.
    fetch_wait_max_ms: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="the scorer consumer's fetch.wait.max.ms (its own; KAFKA_FETCH_WAIT_MAX_MS "
        "is the other services')",
    )
    # How long a batch's outputs may wait for the broker's acknowledgement before they are sent
    # again through a new producer (a broker restarting, or restarted without its state).
    delivery_timeout_s: float = Field(default=30.0, gt=0)
    threads: int = Field(default=1, ge=1, description="onnxruntime intra-op threads per process")
    use_cuda: bool = Field(default=False, description="try the CUDA execution provider")
    novelty_mix: float = Field(
        default=0.5, ge=0.0, le=1.0, description="latent novelty's share of the exploration score"
    )
    expected_alerts: float = Field(
        default=1_000.0,
        gt=0,
        description="alerts per budget period to assume until a whole period has been seen "
        "(budgets are a share of the stream): set it near the survey's volume per night",
    )
    clock: Literal["event", "wall"] = Field(
        default="event", description="budget clock: alert observation time or wall time"
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="scorer processes in this container, one consumer group (`ahunt scorer "
        "--workers`): about one per core; partitions >= replicas x workers",
    )
    metrics_port: int = Field(default=9101, ge=0, le=65535, description="0 disables /metrics")
    metrics_per_user: int = Field(
        default=0,
        ge=0,
        le=1_000,
        description="users (first come) with their own series of ahunt_scorer_published_total; "
        "the others are counted as 'other'; 0: one series per reason, user 'all'",
    )
    users_refresh_s: float = Field(default=5.0, gt=0)
    models_refresh_s: float = Field(
        default=2.0, gt=0, description="model poll interval (registry announcements wake it early)"
    )
    registry: bool = Field(
        default=True,
        description="follow the model registry in Redis; a survey with a live registry version "
        "is served from it, the others from model_dir's CURRENT",
    )
    model_cache_dir: Path | None = Field(
        default=None, description="where registry versions are materialised (<model_dir>/.registry)"
    )
    lag_refresh_s: float = Field(default=10.0, gt=0)
    cache_ttl_s: int = Field(default=7 * 86_400, ge=60, description="feedback cache lifetime")
    background_sample: float = Field(
        default=0.01, ge=0.0, le=1.0, description="share of undelivered alerts cached as background"
    )
    candidates_max: int = Field(default=500, ge=1, description="questions kept per user")
    schema_dir: Path | None = Field(default=None, description="local Confluent schemas")
    schema_registry_url: str | None = None
    seed: int = 0
    model_wait_s: float = Field(
        default=300.0,
        ge=0.0,
        description="exit if no model is live after this long (0: wait forever)",
    )
    clock_window: int = Field(
        default=64,
        ge=1,
        description="the event clock is the 8th latest of this many recent alerts' times "
        "(fewer than 8 alerts dated ahead cannot move it; it only goes forward)",
    )
    dead_letter_prefix_bytes: int = Field(
        default=4096, ge=0, le=65_536, description="bytes of the original in each envelope"
    )
    dead_letter_keep_s: int = Field(
        default=7 * 86_400, ge=60, description="how long Redis keeps dead letters' originals"
    )
    dead_letter_keep_max_bytes: int = Field(
        default=16 << 20, ge=0, description="a larger original is not kept (its envelope says so)"
    )
    dead_letter_store_max_bytes: int = Field(
        default=256 << 20,
        ge=0,
        description="all kept originals together at most this (a flood cannot fill Redis)",
    )
    warmup_alerts: int = Field(
        default=64, ge=1, description="real alerts per survey a new model is checked on"
    )
    warmup_save_s: float = Field(
        default=300.0, gt=0, description="how often the warm-up stamps are saved to Redis"
    )
    max_slowdown: float = Field(
        default=3.0,
        gt=1.0,
        description="refuse a version slower per stamp than this many times the live one",
    )
    max_ms_per_alert: float = Field(
        default=100.0,
        ge=0.0,
        description="refuse a version slower than this per warm-up stamp (0: no limit)",
    )
    crash_after_batches: int = Field(
        default=0,
        ge=0,
        description="fault injection for tests: exit after delivering the Nth "
        "batch, before its commit (0 = off)",
    )

    @property
    def registry_cache_dir(self) -> Path:
        return self.model_cache_dir or self.model_dir / ".registry"
