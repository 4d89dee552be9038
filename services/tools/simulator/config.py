"""What a simulated survey looks like: the class mix and the observing conditions (pydantic)."""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: The truth labels, in a fixed order (class index = position). Written only to truth.csv.
CLASSES: Final[tuple[str, ...]] = (
    "supernova",  # a new point source offset from a host galaxy
    "variable_star",  # a star present in the template that changed brightness
    "cosmic_ray",  # sharp hot pixels or a short track, only in the science image
    "dipole",  # a bad subtraction: positive/negative pair on a bright star
    "lensed_arc",  # rare and interesting: arcs / an Einstein ring around a galaxy
    "satellite",  # rare, striking and uninteresting: a long bright streak across the stamp
)

DEFAULT_MIX: Final[dict[str, float]] = {
    "supernova": 0.30,
    "variable_star": 0.30,
    "cosmic_ray": 0.17,
    "dipole": 0.17,
    "lensed_arc": 0.02,
    "satellite": 0.04,
}

#: ZTF cutouts are 63x63 pixels of ~1 arcsec, centred on the candidate.
STAMP_SIZE: Final = 63


class SimulationConfig(BaseModel):
    """Knobs of the simulation. Frozen; ``class_mix`` is normalised to sum to 1.

    >>> SimulationConfig(class_mix={"supernova": 1, "satellite": 1}).class_mix["satellite"]
    0.5
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    class_mix: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_MIX))
    #: JD of the first night's midnight (UTC); 2461101.5 is 2026-03-02 00:00 UTC.
    start_jd: float = 2461101.5
    #: Science seeing FWHM in pixels (~arcsec): log-normal median and clip range.
    seeing_median_px: float = Field(default=2.2, gt=0.5)
    seeing_range_px: tuple[float, float] = (1.4, 4.5)
    #: Reference (template) seeing: coadds are built from good-seeing frames.
    template_seeing_range_px: tuple[float, float] = (1.4, 2.6)
    sky_range_dn: tuple[float, float] = (60.0, 350.0)
    #: Effective gain (e-/DN): sets the Poisson noise of sky and sources.
    gain_range: tuple[float, float] = (2.0, 5.0)
    #: At most this many earlier observations (upper limits) in ``prv_candidates``; 0 = always
    #: null. Kept small: the history dominates decoding cost and the scorer never reads it.
    max_history: int = Field(default=3, ge=0, le=30)
    #: Alerts per exposure (alerts of one exposure share jd, filter and pid).
    alerts_per_exposure: int = Field(default=40, ge=1, le=9_999)

    @field_validator("class_mix")
    @classmethod
    def _known_classes(cls, mix: dict[str, float]) -> dict[str, float]:
        unknown = set(mix) - set(CLASSES)
        if unknown:
            raise ValueError(f"unknown classes {sorted(unknown)}; known: {list(CLASSES)}")
        if any(weight < 0 for weight in mix.values()):
            raise ValueError("class weights must be >= 0")
        total = sum(mix.values())
        if total <= 0:
            raise ValueError("class_mix needs at least one positive weight")
        return {name: mix.get(name, 0.0) / total for name in CLASSES if mix.get(name, 0.0) > 0}

    @model_validator(mode="after")
    def _ranges(self) -> SimulationConfig:
        for name in ("seeing_range_px", "template_seeing_range_px", "sky_range_dn", "gain_range"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must be 0 < low <= high, got {(low, high)}")
        return self

    def probabilities(self) -> tuple[tuple[str, ...], list[float]]:
        """Classes with a positive weight and their probabilities, in :data:`CLASSES` order."""
        names = tuple(name for name in CLASSES if name in self.class_mix)
        return names, [self.class_mix[name] for name in names]
