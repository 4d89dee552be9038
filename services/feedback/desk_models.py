"""Bodies of the routes the desk added: sign-in, the live stream's events, discoveries."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SessionOut(BaseModel):
    user: str
    expires_in_s: int = Field(description="the session cookie's lifetime")


class StreamAlert(BaseModel):
    """The `data` of an `alert` event on `/v1/me/stream`: one of your deliveries, as the
    scorer published it on your topic (`schemas/user_alert.v1.avsc`), cutouts left out (fetch
    them from `stamps_url`)."""

    alert_id: str
    object_id: str
    survey: str
    score: float = Field(description="your personal score in [0, 1]")
    reason: str = Field(description="the strategy that chose it: top, uncertain or random")
    class_probabilities: dict[str, float]
    novelty: float
    model_version: str
    ra: float | None
    dec: float | None
    magnitude: float | None
    alert_time: float | None = Field(description="observation time, unix seconds")
    published_at: float = Field(description="unix seconds")
    alert_url: str
    stamps_url: str = Field(description="append science|template|difference.png")


class StreamSkipped(BaseModel):
    """The `data` of a `skipped` event: a record on your topic that could not be decoded (the
    stream goes on after it; its id still advances, so a resume does not meet it again)."""

    partition: int
    offset: int
    reason: str


class StreamReady(BaseModel):
    """The `data` of the first event, `ready`: where the stream starts. Its id is a resume
    point like every other event's."""

    topic: str
    positions: dict[int, int] = Field(description="partition -> next offset relayed")
    resumed: bool = Field(description="true when Last-Event-ID (or ?last_event_id) was used")


class CurvePoint(BaseModel):
    at: float = Field(description="unix seconds of the label")
    labelled: int = Field(description="your labels so far")
    liked: int = Field(description="of which you marked interesting")


class LikedAlert(BaseModel):
    alert_id: str
    label: str
    labelled_at: float
    object_id: str | None
    survey: str
    stamps_url: str


class DiscoveriesOut(BaseModel):
    labelled: int
    liked: int
    curve: list[CurvePoint] = Field(
        description="cumulative counts in label order, thinned to at most `points` points "
        "(the last label always included)"
    )
    gallery: list[LikedAlert] = Field(description="what you liked, newest first")
