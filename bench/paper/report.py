"""Markdown tables from `ahunt bench paper --json` files, so docs/BENCHMARKS.md quotes the
measured numbers rather than hand-copied ones.

    python -m bench.paper.report bench/results/digits-C.json [...]
    python -m bench.paper.report --versus bench/results/digits-C.json [...]   # issue 7 targets
    python -m bench.paper.report --versus a.json+b.json   # one run split over two files
    python -m bench.paper.report --ablation bench/results/ablation-*.json   # one AHUNT row each

``--versus`` prints one row per run: AHUNT against the active anomaly discovery peers of that run
(the ``aad-*`` / ``pine-*`` methods): AHUNT's held-out AUROC must be above the best peer AUROC and
its found fraction at least the best peer found fraction. ``a.json+b.json`` merges the methods of
two files of the same scenario (e.g. MNIST, whose peers run separately).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

COLUMNS = (
    ("test_auroc", "held-out AUROC", 3),
    ("test_ap", "held-out AP", 3),
    ("found_fraction", "found", 2),
    ("rws", "pool RWS", 3),
    ("r_precision", "R-precision", 3),
    ("mcc", "MCC", 3),
    ("true_candidates_pct", "true cand. % (last night)", 0),
)


def _cell(stat: dict[str, float], digits: int) -> str:
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def table(results: dict[str, Any]) -> str:
    head = "| method | " + " | ".join(title for _, title, _ in COLUMNS) + " | s / seed |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for name, res in results["methods"].items():
        cells = " | ".join(_cell(res["final"][key], d) for key, _, d in COLUMNS)
        lines.append(f"| {name} | {cells} | {res['seconds_per_seed']['mean']:.1f} |")
    cfg = results["config"]
    seeds = len(cfg["seeds"])
    lines.append(
        f"\n{cfg['dataset']}, normals {cfg['normals']}, anomaly {cfg['anomaly']}"
        + (f", distractor {cfg['distractor']}" if cfg.get("distractor") is not None else "")
        + f", {cfg['nights']} nights, Q={cfg['questions']}, strategy {cfg['strategy']}, "
        f"loss {cfg['learner']['loss']}, novelty mix {cfg['novelty_mix']}, "
        f"min epoch samples {cfg['learner']['min_epoch_samples']}, "
        f"label smoothing {cfg['learner'].get('label_smoothing', 0.0)}, {seeds} seeds; "
        f"wall time {results.get('elapsed_seconds', float('nan'))} s on 2 cores."
    )
    return "\n".join(lines)


PEER_PREFIXES = ("aad-", "pine-")


def _mean(res: dict[str, Any], key: str) -> float:
    return float(res["final"][key]["mean"])


def versus(named: list[tuple[str, dict[str, Any]]], method: str = "ahunt") -> str:
    """AHUNT vs the peers per run (a markdown table); runs without peers are skipped.

    The AUROC to beat is the best peer's by AUROC, the found fraction to match the best peer's by
    found fraction (they need not be the same peer)."""
    lines = [
        f"| run | {method} AUROC | best peer AUROC | {method} found | best peer found | met |",
        "|---|---|---|---|---|---|",
    ]
    for name, results in named:
        methods = results["methods"]
        peers = {m: r for m, r in methods.items() if m.startswith(PEER_PREFIXES)}
        if method not in methods or not peers:
            continue
        ours = methods[method]
        by_auroc = max(peers, key=lambda m: _mean(peers[m], "test_auroc"))
        by_found = max(peers, key=lambda m: _mean(peers[m], "found_fraction"))
        met = _mean(ours, "test_auroc") > _mean(peers[by_auroc], "test_auroc") and _mean(
            ours, "found_fraction"
        ) >= _mean(peers[by_found], "found_fraction")
        lines.append(
            f"| {name} | {_cell(ours['final']['test_auroc'], 3)} "
            f"| {_cell(peers[by_auroc]['final']['test_auroc'], 3)} ({by_auroc}) "
            f"| {_cell(ours['final']['found_fraction'], 2)} "
            f"| {_cell(peers[by_found]['final']['found_fraction'], 2)} ({by_found}) "
            f"| {'yes' if met else 'no'} |"
        )
    return "\n".join(lines)


def _settings(cfg: dict[str, Any]) -> str:
    learner = cfg["learner"]
    return (
        f"strategy {cfg['strategy']}, loss {learner['loss']}, novelty mix {cfg['novelty_mix']}, "
        f"min epoch samples {learner['min_epoch_samples']}, "
        f"label smoothing {learner.get('label_smoothing', 0.0)}"
    )


def ablation(named: list[tuple[str, dict[str, Any]]], method: str = "ahunt") -> str:
    """One row per run for ``method``, with the settings it ran under (ablation tables)."""
    keys = ("test_auroc", "test_ap", "found_fraction", "rws")
    titles = {key: (title, digits) for key, title, digits in COLUMNS}
    lines = [
        "| run | settings | " + " | ".join(titles[k][0] for k in keys) + " | s / seed |",
        "|" + "---|" * (len(keys) + 3),
    ]
    for name, results in named:
        res = results["methods"].get(method)
        if res is None:
            continue
        cells = " | ".join(_cell(res["final"][k], titles[k][1]) for k in keys)
        lines.append(
            f"| {name} | {_settings(results['config'])} | {cells} "
            f"| {res['seconds_per_seed']['mean']:.1f} |"
        )
    return "\n".join(lines)


def _merged(paths: list[str]) -> dict[str, Any]:
    """The methods of several result files of one scenario, as one result."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    merged = dict(runs[0])
    merged["methods"] = {m: r for run in runs for m, r in run["methods"].items()}
    return merged


def main(paths: list[str]) -> int:
    if paths and paths[0] == "--versus":
        named = [(Path(arg.split("+")[0]).stem, _merged(arg.split("+"))) for arg in paths[1:]]
        print(versus(named))
        return 0
    if paths and paths[0] == "--ablation":
        print(ablation([(Path(p).stem, json.loads(Path(p).read_text())) for p in paths[1:]]))
        return 0
    for path in paths:
        print(f"### {Path(path).stem}\n")
        print(table(json.loads(Path(path).read_text())))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
