"""Paper-style figure for `ahunt bench paper` results: metric vs night, mean +- std over seeds."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

# Agg before pyplot: benchmarks run headless (CI, device machines) where no display exists.
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

# (metric key, panel title, y-axis label), laid out row-major on a 2x3 grid.
PANELS: tuple[tuple[str, str, str], ...] = (
    ("rws", "Rank-weighted score (pool)", "RWS"),
    ("r_precision", "R-precision (pool)", "R-precision"),
    ("true_candidates_pct", "True candidates per night", "% of questions"),
    ("found_fraction", "Anomalies found (cumulative)", "fraction found"),
    ("test_auroc", "Held-out AUROC", "AUROC"),
    ("test_ap", "Held-out average precision", "AP"),
)
DPI = 120


def _stat(entry: Mapping[str, Any], metric: str, key: str) -> float:
    """One of mean/std for `metric`, nan when absent or null (JSON has no nan literal)."""
    value = entry.get(metric)
    if not isinstance(value, Mapping):
        return math.nan
    raw = value.get(key)
    return math.nan if raw is None else float(raw)


def _series(
    per_night: Sequence[Mapping[str, Any]], metric: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(nights, mean, std) for one method, or None when the method never reports `metric`."""
    if not any(metric in entry for entry in per_night):
        return None
    nights = np.array(
        [float(entry.get("night", i + 1)) for i, entry in enumerate(per_night)], dtype=np.float64
    )
    mean = np.array([_stat(e, metric, "mean") for e in per_night], dtype=np.float64)
    std = np.array([_stat(e, metric, "std") for e in per_night], dtype=np.float64)
    # A missing std (e.g. a single seed) should not hide the mean line; draw no band instead.
    std = np.where(np.isnan(std), 0.0, std)
    return nights, mean, std


def _draw_panel(
    ax: Axes,
    methods: Mapping[str, Mapping[str, Any]],
    colors: Mapping[str, Any],
    panel: tuple[str, str, str],
) -> None:
    metric, title, ylabel = panel
    drawn = 0
    for name, result in methods.items():
        series = _series(result.get("per_night", []), metric)
        if series is None:
            continue
        nights, mean, std = series
        # nan means break the line and band into gaps instead of failing the whole plot.
        ax.plot(nights, mean, marker="o", markersize=3, color=colors[name], label=name)
        ax.fill_between(nights, mean - std, mean + std, color=colors[name], alpha=0.2, lw=0)
        drawn += 1
    ax.set_title(title)
    ax.set_xlabel("night")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # nights are whole numbers
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)


def _format_classes(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _suptitle(config: Mapping[str, Any]) -> str:
    parts = [f"dataset {config.get('dataset', '?')}"]
    if "normals" in config:
        parts.append(f"normals {_format_classes(config['normals'])}")
    if "anomaly" in config:
        parts.append(f"anomaly {_format_classes(config['anomaly'])}")
    if config.get("distractor") is not None:
        parts.append(f"distractor {_format_classes(config['distractor'])}")
    seeds = config.get("seeds")
    if seeds is not None:
        # `seeds` may be a count or the list of seeds actually used.
        n_seeds = len(seeds) if isinstance(seeds, list | tuple) else seeds
        parts.append(f"{n_seeds} seeds (mean +- std)")
    return "AHUNT paper benchmark: " + ", ".join(parts)


def plot_results(results: dict[str, Any], out_png: str | Path) -> None:
    """Draw the 2x3 metric-vs-night grid for every method in `results` and save it as PNG."""
    methods: Mapping[str, Mapping[str, Any]] = results.get("methods", {})
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    # Fixed color per method so a method looks the same in every panel.
    colors = {name: cycle[i % len(cycle)] for i, name in enumerate(methods)}

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5), squeeze=False)
    try:
        for ax, panel in zip(axes.ravel(), PANELS, strict=True):
            _draw_panel(ax, methods, colors, panel)
        fig.suptitle(_suptitle(results.get("config", {})))
        fig.tight_layout()
        out = Path(out_png)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=DPI)
    finally:
        # Benchmarks may plot many runs in one process; release the figure's memory every time.
        plt.close(fig)
