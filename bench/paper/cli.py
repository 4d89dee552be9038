"""`ahunt bench paper`: argument parsing and reporting for the paper benchmark."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.paper.methods import METHODS, PAPER_METHODS
from bench.paper.real_alerts import DEFAULT_ALERTS
from bench.paper.real_scenarios import REAL_CROP, REAL_SCENARIOS, real_scenario, real_summary
from bench.paper.runner import RunConfig, run
from bench.paper.scenario import ScenarioConfig
from models.augment import AUGMENTATIONS, Augmentation
from models.learner import LearnerConfig
from models.losses import LOSSES
from models.network import EncoderConfig
from models.questions import StrategyMix

# Learner defaults per dataset: digits are not rotation-invariant (a rotated 6 is a 9), so they
# get shifts instead of the sky stamps' D4 symmetries.
DATASET_AUGMENT: dict[str, Augmentation] = {"digits": "shift", "mnist": "shift", "ztf-real": "d4"}


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", choices=("digits", "mnist", "ztf-real"), default="digits")
    p.add_argument(
        "--scenario",
        choices=sorted(REAL_SCENARIOS),
        default="R1",
        help="ztf-real: R1 asteroid hunter, R2 stream cleaner, R3 two users",
    )
    p.add_argument(
        "--alerts", type=Path, default=DEFAULT_ALERTS, help="ztf-real: folder of Avro packets"
    )
    p.add_argument(
        "--labels",
        type=Path,
        default=None,
        help="ztf-real: labels CSV (default: ALERTS/labels.csv)",
    )
    p.add_argument(
        "--crop", type=int, default=REAL_CROP, help="ztf-real: central crop in pixels (0: 63x63)"
    )
    p.add_argument("--normals", type=_ints, default=(0, 1, 2, 3), help="e.g. 0,1,2,3")
    p.add_argument("--anomaly", type=int, default=5)
    p.add_argument(
        "--distractor", type=int, default=None, help="a class the Oracle answers 'not interesting'"
    )
    p.add_argument(
        "--pre",
        type=_ints,
        default=(20,),
        help="bootstrap examples per normal class (one number, or one per class)",
    )
    p.add_argument(
        "--per-night",
        type=_ints,
        default=(5,),
        help="normal examples per class per night (one number, or one per class)",
    )
    p.add_argument("--anomalies-per-night", type=int, default=2)
    p.add_argument("--distractors-per-night", type=int, default=2)
    p.add_argument("--nights", type=int, default=15)
    p.add_argument("--questions", type=int, default=3, help="Oracle budget per night (Q)")
    p.add_argument("--noise", type=float, default=0.1)
    p.add_argument(
        "--strategy",
        type=StrategyMix.parse,
        default=StrategyMix.parse("top"),
        help="top | uncertain | random | mixture like top:0.8,random:0.2",
    )
    p.add_argument("--seeds", type=int, default=5, help="number of seeds (0..S-1)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument(
        "--methods", default=",".join(PAPER_METHODS), help=f"comma list among {', '.join(METHODS)}"
    )
    p.add_argument("--loss", choices=LOSSES, default="ce")
    p.add_argument(
        "--augment", choices=AUGMENTATIONS, default=None, help="default: shift for digits/mnist"
    )
    p.add_argument("--epochs", type=int, default=None, help="fine-tune epochs per night")
    p.add_argument("--pretrain-epochs", type=int, default=None)
    p.add_argument(
        "--novelty-mix",
        type=float,
        default=0.5,
        help="share of the latent detector in the exploration (reserve) score",
    )
    p.add_argument("--reserve-share", type=float, default=0.2)
    p.add_argument(
        "--tta", action="store_true", help="AHUNT scores each stamp in its 8 D4 orientations"
    )
    p.add_argument("--max-oversample", type=float, default=None)
    p.add_argument(
        "--label-smoothing",
        type=float,
        default=None,
        help="target share moved onto the other known classes (default: the learner's)",
    )
    p.add_argument(
        "--min-epoch-samples",
        type=int,
        default=None,
        help="an epoch draws max(labelled set, this) examples (default: the learner's)",
    )
    p.add_argument(
        "--jobs", type=int, default=None, help="parallel seed processes (default: cores)"
    )
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--plot", type=Path, default=None, help="write the curves here (PNG)")


def config_from_args(a: argparse.Namespace) -> RunConfig:
    methods = tuple(m.strip() for m in a.methods.split(",") if m.strip())
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise SystemExit(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    scenario = ScenarioConfig(
        dataset=a.dataset,
        normals=a.normals,
        anomaly=a.anomaly,
        distractor=a.distractor,
        pre=a.pre,
        per_night=a.per_night,
        anomalies_per_night=a.anomalies_per_night,
        distractors_per_night=a.distractors_per_night,
        nights=a.nights,
        questions=a.questions,
        noise=a.noise,
    )
    if a.dataset == "ztf-real":
        scenario = real_scenario(scenario, a.scenario, a.alerts, a.labels, a.crop)
    learner = LearnerConfig(
        encoder=EncoderConfig(), loss=a.loss, augment=a.augment or DATASET_AUGMENT[a.dataset]
    )
    overrides: dict[str, Any] = {}
    if a.epochs is not None:
        overrides["finetune_epochs"] = a.epochs
    if a.pretrain_epochs is not None:
        overrides["pretrain_epochs"] = a.pretrain_epochs
    if a.max_oversample is not None:
        overrides["max_oversample"] = a.max_oversample
    if a.label_smoothing is not None:
        overrides["label_smoothing"] = a.label_smoothing
    if a.min_epoch_samples is not None:
        overrides["min_epoch_samples"] = a.min_epoch_samples
    learner = learner.with_(**overrides)
    seeds = tuple(range(a.first_seed, a.first_seed + a.seeds))
    return RunConfig(
        scenario, methods, seeds, learner, a.strategy, a.novelty_mix, a.reserve_share, a.tta
    )


def format_table(results: dict[str, Any]) -> str:
    cols = ("rws", "r_precision", "true_candidates_pct", "found_fraction", "test_auroc", "test_ap")
    head = f"{'method':<18}" + "".join(f"{c:>22}" for c in cols) + f"{'s/seed':>9}"
    lines = [head, "-" * len(head)]
    for name, res in results["methods"].items():
        cells = "".join(
            f"{res['final'][c]['mean']:>14.3f} +-{res['final'][c]['std']:>5.3f}" for c in cols
        )
        lines.append(f"{name:<18}{cells}{res['seconds_per_seed']['mean']:>9.1f}")
    return "\n".join(lines)


def main(a: argparse.Namespace) -> int:
    config = config_from_args(a)
    t0 = time.perf_counter()
    n = len(config.seeds)
    print(
        f"ahunt bench paper: {config.scenario.dataset}, methods {', '.join(config.methods)}, "
        f"{n} seeds, {config.scenario.nights} nights",
        file=sys.stderr,
        flush=True,
    )
    results = run(config, a.jobs, progress=lambda m: print(f"  {m}", file=sys.stderr, flush=True))
    results["elapsed_seconds"] = round(time.perf_counter() - t0, 1)
    if config.scenario.dataset == "ztf-real":
        results.update(real_summary(config.scenario, a.scenario))
    print(f"final night ({config.scenario.nights}), mean +- std over {n} seeds:")
    print(format_table(results))
    print(f"elapsed {results['elapsed_seconds']} s")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(results, indent=1, allow_nan=True))
    if a.plot:
        from bench.paper.plot import plot_results

        plot_results(results, a.plot)
    return 0
