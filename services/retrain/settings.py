"""Retrain settings (env prefix ``AHUNT_RETRAIN_``; ``REDIS_URL`` is shared:
``services.common.settings``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import Settings

Device = Literal["auto", "cpu", "cuda"]


class GateConfig(BaseModel):
    """The promotion gate's thresholds (``services.retrain.gate``). Part of
    :class:`RetrainSettings` (read from ``AHUNT_RETRAIN_*``), and a plain frozen model for the pure
    gate and its tests."""

    model_config = ConfigDict(frozen=True)

    min_holdout_per_class: int = Field(default=5, ge=1, description="else recall is not compared")
    min_auroc_examples: int = Field(
        default=5, ge=1, description="positives and negatives a user needs for an AUROC"
    )
    recall_tolerance: float = Field(
        default=0.05, ge=0.0, le=1.0, description="allowed per-class recall drop vs the live model"
    )
    pool_collapse_share: float = Field(
        default=0.9,
        gt=0.0,
        le=1.0,
        description="a candidate calling at least this share of the held-out bootstrap pool by "
        "one other class has collapsed, unless the live model already did",
    )
    pool_wanted_share: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="a candidate calling more than this share of the held-out bootstrap pool by "
        "classes users want floods them, unless the live model already did",
    )
    auroc_tolerance: float = Field(
        default=0.02, ge=0.0, le=1.0, description="allowed drop of each user's interest AUROC"
    )
    slack_examples: float = Field(
        default=1.0, ge=0.0, description="extra allowed drop, in held-out examples (1/n each)"
    )
    parity_tolerance: float = Field(
        default=1e-4, gt=0.0, description="max torch/onnxruntime difference at export and gate"
    )
    novelty_mix: float = Field(
        default=0.5, ge=0.0, le=1.0, description="as the scorer's, for the interest scores"
    )
    max_slowdown: float = Field(
        default=3.0,
        gt=1.0,
        description="a candidate slower per stamp than this many times the live model is "
        "refused (as the scorer's AHUNT_SCORER_MAX_SLOWDOWN)",
    )


class RetrainSettings(Settings, GateConfig):
    """The retrain service (``ahunt retrain``, ``ahunt bootstrap``)."""

    model_config = SettingsConfigDict(env_prefix="AHUNT_RETRAIN_")

    surveys: list[str] = Field(default_factory=lambda: ["ztf"], description="surveys retrained")
    # Triggers: a run starts when either is due; "--now" runs once regardless.
    keep_versions: int = Field(
        default=20,
        ge=0,
        description="after each run, delete registry versions beyond the live one, this many "
        "rollback targets and this many most recent (0 keeps every version)",
    )
    interval_minutes: float = Field(default=60.0, gt=0, description="run at least this often")
    min_new_labels: int = Field(
        default=20, ge=1, description="run when the label revision moved this much since the last"
    )
    poll_s: float = Field(default=10.0, gt=0, description="how often the loop checks triggers")
    lock_ttl_s: int = Field(default=3600, ge=10, description="one retrain per survey at a time")

    # Training. Warm-started retrains keep the learner's own config (saved with each version);
    # these only set how much to train.
    bootstrap_epochs: int = Field(default=5, ge=1, description="epochs of a fresh model (v1)")
    finetune_epochs: int = Field(default=2, ge=1, description="epochs of a warm-started retrain")
    min_epoch_samples: int | None = Field(
        default=None, ge=1, description="draws per epoch at least (unset: the learner's config)"
    )
    batch_size: int | None = Field(default=None, ge=1, description="unset: the learner's config")
    device: Device = Field(default="auto", description="auto = CUDA when torch sees a GPU")
    threads: int = Field(
        default=1, ge=0, description="torch intra-op threads (0: torch default, all cores)"
    )
    seed: int = Field(default=0, description="seed of a fresh learner")
    detector_recent_max: int = Field(
        default=2000, ge=0, description="recent cached alerts added to the detector's pool"
    )

    # Held-out split (the gate's thresholds: GateConfig).
    holdout_fraction: float = Field(
        default=0.2, ge=0.0, lt=1.0, description="share of labelled examples the gate measures on"
    )
    min_class_for_holdout: int = Field(
        default=10, ge=2, description="classes with fewer labelled examples are all trained on"
    )

    work_dir: Path = Field(default=Path("var/retrain"), description="exports before publishing")
    registry_cache_dir: Path = Field(
        default=Path("var/registry-cache"), description="versions fetched from the registry"
    )
    metrics_port: int = Field(default=9103, ge=0, le=65535, description="0 disables /metrics")
