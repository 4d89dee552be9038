"""docs/BENCHMARKS.md "Real ZTF alerts" from the ``ahunt bench paper --dataset ztf-real --json``
files, so the section quotes measured numbers only:

    python -m bench.paper.real_report bench/results/ztf-real-R1.json [...R2.json R3.json]
    python -m bench.paper.real_report --progress bench/results/ztf-real-R1.log [...]

``--progress`` reads the per-seed lines a run prints to stderr (``seed N done (held-out AUROC:
method value, ...)``): the seeds a run had finished when it was stopped.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.paper.report import PEER_PREFIXES, _cell, _mean

CAVEAT = (
    "**Weak labels.** Every number below is measured against labels computed by ZTF's own "
    "pipeline from fields of each alert (`known_sso`: a known asteroid within 5 arcsec; `bogus`: "
    "deep real/bogus score < 0.1; `star_variable`: on a Pan-STARRS star; `real_other`: "
    "real/bogus > 0.9), not against human vetting: a method can be right where the label is "
    "wrong. The models see the three cutouts only, never those fields."
)
# Issue 12's targets: held-out AUROC per scenario, and the found fraction in R1.
AUROC_TARGETS = {"R1": 0.95, "R2": 0.90}
FOUND_TARGET = {"R1": 0.8}


def _scenario(results: dict[str, Any]) -> str:
    return str(results.get("scenario", "?"))


def _users(results: dict[str, Any]) -> list[str]:
    """'' for one user, else each ``@user`` suffix."""
    users = sorted({m.split("@", 1)[1] for m in results["methods"] if "@" in m})
    return [f"@{u}" for u in users] or [""]


def methods_table(results: dict[str, Any]) -> str:
    lines = [
        "| method | held-out AUROC | held-out AP | found | pool RWS | s / seed |",
        "|---|---|---|---|---|---|",
    ]
    for name, res in results["methods"].items():
        f = res["final"]
        lines.append(
            f"| {name} | {_cell(f['test_auroc'], 3)} | {_cell(f['test_ap'], 3)} "
            f"| {_cell(f['found_fraction'], 2)} | {_cell(f['rws'], 3)} "
            f"| {res['seconds_per_seed']['mean']:.1f} |"
        )
    cal = results.get("calibration")
    if cal:
        config = results["config"]
        anomaly = f"@{config['class_names'][config['anomaly']]}"
        for user in _users(results):
            # The calibration names the anomaly's figures without a suffix (calibration.py).
            suffix = "" if user in ("", anomaly) else user
            key, ap = f"auroc{suffix}", f"ap{suffix}"
            lines.append(
                f"| calibration: supervised HistGradientBoosting, 21x21, every label{user} "
                f"| {_cell(cal[key], 3)} | {_cell(cal[ap], 3)} | - | - | - |"
            )
    return "\n".join(lines)


def targets_table(named: list[tuple[str, dict[str, Any]]]) -> str:
    lines = [
        "| scenario | AHUNT AUROC | target | best peer AUROC | ahead of best peer "
        "| AHUNT found | found target | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scenario, results in named:
        for user in _users(results):
            methods = results["methods"]
            ours = methods.get(f"ahunt{user}")
            peers = {
                m: r for m, r in methods.items() if m.startswith(PEER_PREFIXES) and m.endswith(user)
            }
            if ours is None or not peers:
                continue
            best = max(peers, key=lambda m: _mean(peers[m], "test_auroc"))
            auc, found = _mean(ours, "test_auroc"), _mean(ours, "found_fraction")
            ahead = auc > _mean(peers[best], "test_auroc")
            target = AUROC_TARGETS.get(scenario)
            found_target = FOUND_TARGET.get(scenario)
            met = (
                ahead
                and (target is None or auc >= target)
                and (found_target is None or found >= found_target)
            )
            lines.append(
                f"| {scenario}{user} | {_cell(ours['final']['test_auroc'], 3)} "
                f"| {'>= ' + str(target) if target else '-'} "
                f"| {_cell(peers[best]['final']['test_auroc'], 3)} ({best}) "
                f"| {'yes' if ahead else 'no'} | {_cell(ours['final']['found_fraction'], 2)} "
                f"| {'>= ' + str(found_target) if found_target else '-'} "
                f"| {'yes' if met else 'no'} |"
            )
    return "\n".join(lines)


def by_class_table(named: list[tuple[str, dict[str, Any]]], method: str = "ahunt") -> str:
    """AHUNT's held-out AUROC of the hunted class against each other class alone, and where its
    questions went: which class it confuses the target with."""
    lines = [
        "| scenario | AUROC vs each class alone | questions asked, by true class (all nights) |",
        "|---|---|---|",
    ]
    for scenario, results in named:
        for user in _users(results):
            res = results["methods"].get(f"{method}{user}")
            if res is None or "by_class" not in res:
                continue
            by = res["by_class"]
            vs = ", ".join(
                f"{k.split(':', 1)[1]} {by[k]['mean']:.3f}" for k in by if k.startswith("auroc_vs:")
            )
            asked = ", ".join(
                f"{k.split(':', 1)[1]} {by[k]['mean']:.1f}" for k in by if k.startswith("asked:")
            )
            lines.append(f"| {scenario}{user} | {vs} | {asked} |")
    return "\n".join(lines)


def settings(results: dict[str, Any]) -> str:
    cfg = results["config"]
    learner = cfg["learner"]
    return (
        f"classes {cfg['class_names']}, {cfg['nights']} nights, Q={cfg['questions']}, "
        f"crop {cfg['crop'] or 63}, strategy {cfg['strategy']}, novelty mix "
        f"{cfg['novelty_mix']}, reserve share {cfg['reserve_share']}, test-time D4 "
        f"{cfg.get('tta', False)}, augment {learner['augment']}, min epoch samples "
        f"{learner['min_epoch_samples']}, {len(cfg['seeds'])} seeds, draws {results.get('plan')}; "
        f"wall time {results.get('elapsed_seconds', float('nan'))} s on 2 shared cores"
    )


_SEED_LINE = re.compile(r"seed (\d+) done \(held-out AUROC: (.*)\)")


def progress_table(paths: list[str]) -> str:
    """Held-out AUROC per method over the seeds each stopped run had finished."""
    lines = ["| run | seeds finished | method: held-out AUROC per seed (mean) |", "|---|---|---|"]
    for path in paths:
        per_method: dict[str, list[float]] = {}
        seeds = []
        for line in Path(path).read_text().splitlines():
            match = _SEED_LINE.search(line)
            if not match:
                continue
            seeds.append(match.group(1))
            for part in match.group(2).split(", "):
                name, value = part.rsplit(" ", 1)
                per_method.setdefault(name, []).append(float(value))
        cells = "; ".join(
            f"{m}: {' / '.join(f'{v:.3f}' for v in vs)} ({statistics.fmean(vs):.3f})"
            for m, vs in per_method.items()
        )
        lines.append(f"| {Path(path).stem} | {', '.join(seeds) or 'none'} | {cells} |")
    return "\n".join(lines)


def main(paths: list[str]) -> int:
    if paths and paths[0] == "--progress":
        print(progress_table(paths[1:]))
        return 0
    named = []
    for path in paths:
        results = json.loads(Path(path).read_text())
        named.append((_scenario(results), results))
    print(CAVEAT + "\n")
    print("### Against the issue's targets\n")
    print(targets_table(named) + "\n")
    print("### Where AHUNT's errors are (last night, mean over seeds)\n")
    print(by_class_table(named) + "\n")
    for scenario, results in named:
        print(f"### {scenario} ({Path(paths[named.index((scenario, results))]).stem})\n")
        print(methods_table(results) + "\n")
        print(settings(results) + ".\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
