"""The real-alert scenarios of issue 12 by name: which weak-label class plays which role.

    R1 asteroid hunter: normals real_other and star_variable, anomaly known_sso (at most 2 a
       night), distractor bogus (answered "not interesting");
    R2 stream cleaner: anomaly bogus, normals the other classes;
    R3 two users on one stream: one hunts known_sso (and dismisses bogus), one hunts bogus.

The classes are the labels file's names (weak labels from ZTF's own pipeline, not human vetting);
``unknown`` (no rule fired) plays no role.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.paper.scenario import ScenarioConfig

SSO, BOGUS, STAR, OTHER = "known_sso", "bogus", "star_variable", "real_other"
# name -> (normals, anomaly, distractor, two users)
REAL_SCENARIOS: dict[str, tuple[tuple[str, ...], str, str | None, bool]] = {
    "R1": ((OTHER, STAR), SSO, BOGUS, False),
    "R2": ((OTHER, STAR, SSO), BOGUS, None, False),
    "R3": ((OTHER, STAR), SSO, BOGUS, True),
}
# The central 31x31 of ZTF's 63x63 stamps (docs/BENCHMARKS.md "Real ZTF alerts": what helped).
REAL_CROP = 31


def real_scenario(
    base: ScenarioConfig, name: str, alerts: Path, labels: Path | None, crop: int
) -> ScenarioConfig:
    """``base`` (the command line's sizes) with the roles of scenario ``name`` on real alerts."""
    normals, anomaly, distractor, two_users = REAL_SCENARIOS[name]
    names = (*normals, anomaly) + ((distractor,) if distractor else ())
    return replace(
        base,
        normals=tuple(range(len(normals))),
        anomaly=len(normals),
        distractor=len(normals) + 1 if distractor else None,
        # Real stamps carry their own noise.
        noise=0.0,
        alerts=str(alerts),
        labels=str(labels if labels is not None else alerts / "labels.csv"),
        class_names=names,
        crop=crop,
        two_users=two_users,
    )


def real_summary(config: ScenarioConfig, name: str) -> dict[str, Any]:
    """What the results file records about the real set: the scenario, the class counts, what
    was left out, and the draws fitted to the counts."""
    from bench.paper.real_stream import codes, data_for, plan

    data = data_for(config)
    return {
        "scenario": name,
        "alerts": {
            "labelled": len(data.alert_ids),
            "objects": len(set(data.objects.tolist())),
            "by_class": data.counts(),
            "unlabelled": data.unlabelled_alerts,
            "labels_without_packet": data.missing_alerts,
            "rejected_by_decoder": data.rejected,
        },
        "plan": plan(config, codes(data, config)).to_dict(config.class_names),
    }
