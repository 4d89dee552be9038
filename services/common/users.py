"""A user's profile: interest, question strategy, budget and filters, as validated data.

The feedback API writes profiles, the scorer reads them; both use this one model, and the topic a
user subscribes to comes from :func:`services.common.topics.user_topic` only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from models.interest import Interest
from models.questions import STRATEGIES, StrategyMix
from services.common.topics import user_topic

# Kafka principals of the services and the operator share the user namespace (docs/SECURITY.md).
RESERVED_NAME_PREFIX = "ahunt-"


def collision_key(user: str) -> str:
    """Names with the same key must not both exist. Kafka refuses topics that differ only by
    '.' versus '_' (their metric names collide), so ``a.b`` and ``a_b`` share a key. Redis keys
    cannot collide: a name has no ':', the separator of every key that holds one.

    >>> collision_key("a.b") == collision_key("a_b")
    True
    """
    return user.replace(".", "_")


def check_new_user(user: str, existing: set[str]) -> None:
    """Raise ValueError if ``user`` is not a valid new name next to ``existing`` ones."""
    user_topic(user)
    if user.startswith(RESERVED_NAME_PREFIX):
        raise ValueError(f"user names starting with {RESERVED_NAME_PREFIX!r} are reserved")
    if user in existing:
        raise ValueError(f"user {user!r} exists")
    key = collision_key(user)
    for other in sorted(existing):
        if collision_key(other) == key:
            raise ValueError(
                f"user {user!r} would collide with user {other!r}: Kafka treats '.' and '_' in "
                "topic names as the same; choose another name"
            )


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Budget(Frozen):
    """At most ``alerts`` deliveries per ``period`` (a rolling window)."""

    alerts: int = Field(default=20, ge=0, le=1_000_000)
    period: Literal["night", "hour"] = "night"

    @property
    def seconds(self) -> float:
        return 86_400.0 if self.period == "night" else 3_600.0


class SkyCone(Frozen):
    ra: float = Field(ge=0.0, lt=360.0, description="degrees")
    dec: float = Field(ge=-90.0, le=90.0, description="degrees")
    radius: float = Field(gt=0.0, le=180.0, description="degrees")


class Filters(Frozen):
    """Optional hard filters applied before selection."""

    cone: SkyCone | None = None
    min_magnitude: float | None = Field(default=None, description="brightest magnitude kept")
    max_magnitude: float | None = Field(default=None, description="faintest magnitude kept")
    surveys: tuple[Literal["ztf", "rubin"], ...] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Filters:
        lo, hi = self.min_magnitude, self.max_magnitude
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("min_magnitude must not exceed max_magnitude")
        return self


class UserProfile(Frozen):
    name: str
    weights: dict[str, float] = Field(default_factory=dict, description="interest per class")
    reserve_share: float = Field(default=0.2, ge=0.0, le=1.0)
    strategy: dict[str, float] = Field(
        default_factory=lambda: {"top": 0.8, "uncertain": 0.1, "random": 0.1}
    )
    budget: Budget = Field(default_factory=Budget)
    filters: Filters = Field(default_factory=Filters)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        user_topic(v)
        return v

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        for name, w in v.items():
            if not (w >= 0.0) or w == float("inf"):
                raise ValueError(f"weight of {name!r} must be finite and >= 0")
        return v

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, v: dict[str, float]) -> dict[str, float]:
        StrategyMix({k: w for k, w in v.items()})  # type: ignore[misc]  # validates names/ratios
        if any(k not in STRATEGIES for k in v):
            raise ValueError(f"strategies must be among {STRATEGIES}")
        return v

    @property
    def interest(self) -> Interest:
        return Interest(self.weights, self.reserve_share)

    @property
    def topic(self) -> str:
        return user_topic(self.name)

    def strategy_shares(self) -> dict[str, float]:
        total = sum(self.strategy.values())
        return {s: self.strategy.get(s, 0.0) / total for s in STRATEGIES}
