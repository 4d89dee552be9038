"""Request and response bodies of the feedback API (what ``/openapi.json`` documents).

Requests forbid unknown fields (422), so a typo never silently does nothing.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from models.taxonomy import RESERVE, normalise_class_name
from services.common.labels import MAX_COMMENT, LabelRecord
from services.common.users import Budget, Filters, UserProfile

ALERT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$"
AlertId = Annotated[str, StringConstraints(pattern=ALERT_ID_PATTERN)]
# What normalisation (models.taxonomy) accepts, as a schema clients and fuzzers can read:
# letters, digits, _ . + - and blanks (which become '_'); case does not matter.
CLASS_INPUT_PATTERN = r"^[ \t]*[A-Za-z0-9][A-Za-z0-9_.+ \t-]*$"
CANONICAL_CLASS_PATTERN = r"^[a-z0-9][a-z0-9_.+-]{0,63}$"
ClassName = Annotated[
    str,
    StringConstraints(max_length=64, pattern=CLASS_INPUT_PATTERN),
    AfterValidator(normalise_class_name),
]
CanonicalClassName = Annotated[str, StringConstraints(pattern=CANONICAL_CLASS_PATTERN)]
Weight = Annotated[float, Field(ge=0.0, le=1e6, allow_inf_nan=False)]
StrategyName = Literal["top", "uncertain", "random"]
DEFAULT_STRATEGY: dict[StrategyName, float] = {"top": 0.8, "uncertain": 0.1, "random": 0.1}


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeedbackIn(Request):
    alert_id: AlertId = Field(description="the alert's id as delivered (ZTF candid, Rubin id)")
    label: ClassName = Field(
        description="class name; a new name creates the class (normalised: lower case, spaces "
        "to '_', letters, digits and _ . + -, at most 64 characters)"
    )
    interesting: bool | None = Field(
        default=None,
        description="true raises this class's weight for you, false sets it to 0 (the class "
        "stays known to the model), null leaves your interest alone",
    )
    comment: str | None = Field(default=None, max_length=MAX_COMMENT)


class LabelOut(BaseModel):
    alert_id: str
    label: str
    interesting: bool | None
    comment: str | None
    survey: str
    model_version: str | None
    labelled_at: float = Field(description="unix seconds")

    @classmethod
    def of(cls, r: LabelRecord) -> LabelOut:
        return cls(**r.model_dump(exclude={"user"}))


class FeedbackOut(LabelOut):
    created: bool = Field(description="true the first time (201), false when replaced (200)")
    revision: int = Field(description="label revision after this write (the retrain trigger)")
    interest_changed: bool


class LabelsPage(BaseModel):
    items: list[LabelOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class InterestDoc(Request):
    """Your interest: replaced as a whole by PUT (omitted fields take their defaults)."""

    weights: dict[CanonicalClassName, Weight] = Field(
        default_factory=dict,
        description=f"weight per class name, '{RESERVE}' included; 0 = never show me this class. "
        "Names as GET /v1/classes lists them (lower case, '_' for blanks)",
    )
    reserve_share: float = Field(
        default=0.2, ge=0.0, le=1.0, description="share of the weight always kept for unknowns"
    )
    strategy: dict[StrategyName, Weight] = Field(
        default_factory=lambda: dict(DEFAULT_STRATEGY),
        description="question strategy mix (ratios, at least one positive)",
    )
    budget: Budget = Field(default_factory=Budget)
    filters: Filters = Field(default_factory=Filters)

    @model_validator(mode="after")
    def _some_strategy(self) -> InterestDoc:
        if sum(self.strategy.values()) <= 0:
            raise ValueError("at least one strategy ratio must be positive")
        return self

    @classmethod
    def of(cls, p: UserProfile) -> InterestDoc:
        return cls.model_validate(p.model_dump(exclude={"name"}))

    def profile(self, user: str) -> UserProfile:
        return UserProfile(name=user, **self.model_dump())


class LabelCounts(BaseModel):
    total: int
    by_class: dict[str, int]


class MeOut(BaseModel):
    user: str
    topic: str = Field(description="the Kafka topic your alerts are published on")
    interest: InterestDoc
    budget: Budget
    labels: LabelCounts


class ClassInfo(BaseModel):
    name: str
    labels: int = Field(description="your labels of this class")
    users: int = Field(
        description="users who labelled this class, for classes of a live model (1 for a class "
        "only in your own labels: other users' private classes are not listed)"
    )
    in_model: bool = Field(description="an output of a live model (from the scorer's cache)")


class ModelInfo(BaseModel):
    version: str | None
    classes: list[str]


class ClassesOut(BaseModel):
    reserve: str = RESERVE
    classes: list[ClassInfo]
    models: dict[str, ModelInfo] = Field(description="per survey, the newest model seen")


class AlertOut(BaseModel):
    alert_id: str
    score: float = Field(description="your personal score")
    reason: str = Field(description="the strategy that chose it for you")
    delivered_at: float | None
    model_version: str | None
    object_id: str | None
    survey: str | None
    ra: float | None
    dec: float | None
    magnitude: float | None
    observed_mjd: float | None
    class_probabilities: dict[str, float]
    novelty: float | None
    cached: bool = Field(description="false once the scorer's cache expired (metadata gone)")
    your_label: LabelOut | None
    cutouts_url: str


class Question(BaseModel):
    alert_id: str
    score: float
    reason: str = Field(description="the strategy that chose it, from the delivery record")
    model_version: str | None
    delivered_at: float | None
    alert_url: str
    cutouts_url: str


class QuestionsOut(BaseModel):
    items: list[Question]


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    redis: Literal["ok", "unavailable"] = Field(
        description="never the backend's own error text (it is logged instead)"
    )
    durable: bool | None = Field(description="labels: appendonly + appendfsync always at startup")
    outbox: int | None = Field(description="feedback events waiting for Kafka")
    kafka_durable: bool | None = Field(
        default=None,
        description="false when the broker keeps messages in memory only (the embedded one): "
        "user topics and the feedback log are lost when it stops; null: not known here",
    )
