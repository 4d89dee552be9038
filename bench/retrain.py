"""Retrain benchmark: one ``retrain_once`` (dataset, train, export, gate, publish) on N labelled
synthetic stamps of 3 x 63 x 63, against a real Redis (private, embedded) and the real registry.

The stamps come from :func:`synthetic_stamps`: science / template / difference triplets of four
classes (normal, transient, variable, artefact) drawn with sky noise, a faint host in every
class, random positions, brightness and seeing, then preprocessed with the survey preprocessing
the scorer uses. They are synthetic but not trivial: the classes differ in which channel holds
the flux and in its shape, not in a constant offset. After the benchmark's 2 epochs on ~4,400 of
them the held-out recall is ~1.0 for normal, transient and artefact but ~0.5 for variable (the
fainter-now half is still confused).

    python -m bench.retrain --labels 5000 --threads 1 --json bench/results/retrain-5000.json

Setup (not timed): a bootstrap v1 on a pool of ``--pool`` normal stamps, then N labels written
with their stamps (``labels.write_label``, three users) and two user profiles. Timed: one
retrain, phase by phase; ``timed_s`` is train + gate + export + publish.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis

from models.preprocess import SURVEY_PREPROCESSING, InputSpec, Preprocessing, preprocess

SYNTHETIC_CLASSES = ("normal", "transient", "artefact", "variable")


def _psf(size: int, row: np.ndarray, col: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """(n, size, size) unit-peak Gaussians centred at (row, col) with width sigma."""
    rr, cc = np.indices((size, size), dtype=np.float32)
    d2 = (rr[None] - row[:, None, None]) ** 2 + (cc[None] - col[:, None, None]) ** 2
    return np.exp(-d2 / (2.0 * sigma[:, None, None] ** 2)).astype(np.float32)


def _streak(size: int, rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, size, size) thin lines through the stamp at random angles (satellite-like)."""
    rr, cc = np.indices((size, size), dtype=np.float32)
    angle = rng.uniform(0, np.pi, n).astype(np.float32)
    offset = rng.uniform(-size / 6, size / 6, n).astype(np.float32)
    centre = (size - 1) / 2
    dist = (
        (rr[None] - centre) * np.cos(angle)[:, None, None]
        - (cc[None] - centre) * np.sin(angle)[:, None, None]
        - offset[:, None, None]
    )
    return np.exp(-(dist**2) / 1.5).astype(np.float32)


def synthetic_raw(
    rng: np.random.Generator, labels: list[str] | tuple[str, ...], size: int = 63
) -> np.ndarray:
    """Raw (N, 3, size, size) float32 triplets (science, template, difference) for ``labels``.

    normal: a steady source in science and template, only noise in the difference; transient: a
    source absent from the template (positive difference); variable: a source in both, brighter
    or fainter now (a residual of either sign); artefact: a streak in science and difference.
    """
    n = len(labels)
    kinds = np.asarray(labels)
    centre = (size - 1) / 2
    row = (centre + rng.normal(0, 1.5, n)).astype(np.float32)
    col = (centre + rng.normal(0, 1.5, n)).astype(np.float32)
    sigma = rng.uniform(1.2, 2.2, n).astype(np.float32)
    flux = rng.lognormal(np.log(40.0), 0.5, n).astype(np.float32)
    psf = _psf(size, row, col, sigma)
    sky = rng.normal(0.0, 1.0, (n, 3, size, size)).astype(np.float32)
    science = np.zeros((n, size, size), np.float32)
    template = np.zeros((n, size, size), np.float32)
    # A faint host/background source in every class, so "there is flux" is not the answer.
    host = _psf(size, row + rng.normal(0, 4, n), col + rng.normal(0, 4, n), sigma * 2.5)
    science += host * flux[:, None, None] * 0.15
    template += host * flux[:, None, None] * 0.15
    steady = kinds == "normal"
    science[steady] += psf[steady] * flux[steady, None, None]
    template[steady] += psf[steady] * flux[steady, None, None]
    new = kinds == "transient"
    science[new] += psf[new] * flux[new, None, None]
    var = kinds == "variable"
    change = rng.choice([0.4, 2.0], n).astype(np.float32)
    template[var] += psf[var] * flux[var, None, None]
    science[var] += psf[var] * (flux * change)[var, None, None]
    art = kinds == "artefact"
    streak = _streak(size, rng, int(art.sum())) * flux[art, None, None] * 0.5
    science[art] += streak
    difference = science - template
    stamps = np.stack([science, template, difference], axis=1) + sky
    return stamps.astype(np.float32)


def synthetic_stamps(
    rng: np.random.Generator,
    labels: list[str] | tuple[str, ...],
    spec: InputSpec,
    preprocessing: Preprocessing = SURVEY_PREPROCESSING,
) -> np.ndarray:
    """Preprocessed network inputs (N, 3, H, W) for ``labels`` (see :func:`synthetic_raw`)."""
    if spec.channels != 3 or spec.height != spec.width:
        raise ValueError(f"synthetic stamps are 3 square channels, not {spec.shape}")
    return preprocess(synthetic_raw(rng, labels, spec.height), preprocessing)


def _write_labels(client: redis.Redis, names: list[str], stamps: np.ndarray, survey: str) -> None:
    from services.common import labels

    users = ("alice", "bob", "carol")
    for i, (name, stamp) in enumerate(zip(names, stamps, strict=True)):
        record = labels.LabelRecord(
            user=users[i % len(users)], alert_id=f"bench-{i}", label=name, survey=survey
        )
        labels.write_label(client, record, stamp, {"survey": survey})


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up v1 and the labels (untimed), then time one retrain; returns the report."""
    import torch

    from services.common import store
    from services.common.embedded import EmbeddedRedis
    from services.common.registry import Registry
    from services.common.users import UserProfile
    from services.retrain.app import retrain_once
    from services.retrain.bootstrap import bootstrap
    from services.retrain.dataset import Examples
    from services.retrain.settings import RetrainSettings
    from services.retrain.train import select_device

    torch.set_num_threads(args.threads)
    spec = InputSpec(3, args.size, args.size)
    rng = np.random.default_rng(args.seed)
    load_before = os.getloadavg()
    with EmbeddedRedis() as server, tempfile.TemporaryDirectory() as tmp:
        client = store.connect(server.url)
        settings = RetrainSettings(
            surveys=["ztf"],
            bootstrap_epochs=2,
            finetune_epochs=args.epochs,
            threads=args.threads,
            device=args.device,
            work_dir=Path(tmp) / "work",
            registry_cache_dir=Path(tmp) / "cache",
            metrics_port=0,
        )
        registry = Registry(client, settings.registry_cache_dir)
        t0 = time.perf_counter()
        pool_names = ["normal"] * args.pool
        pool = Examples(
            tuple(f"pool-{i}" for i in range(args.pool)),
            synthetic_stamps(rng, pool_names, spec),
            tuple(pool_names),
        )
        boot = bootstrap(settings, client, registry, "ztf", pool, spec)
        if not boot.promoted:
            raise RuntimeError(f"bootstrap not promoted: {boot.reason}")
        names = [str(c) for c in rng.choice(SYNTHETIC_CLASSES, args.labels)]
        _write_labels(client, names, synthetic_stamps(rng, names, spec), "ztf")
        for user, weights in (("alice", {"transient": 1.0}), ("bob", {"artefact": 1.0})):
            store.save_profile(client, UserProfile(name=user, weights=weights))
        setup_s = time.perf_counter() - t0

        outcome = retrain_once(settings, client, registry, "ztf")
        load_after = os.getloadavg()
        record = registry.record("ztf", outcome.version) if outcome.version else None
        return {
            "command": "python -m bench.retrain " + " ".join(args.argv),
            "stamps": "synthetic (bench.retrain.synthetic_stamps), 4 classes, preprocessed",
            "input": list(spec.shape),
            "labels": args.labels,
            "pool": args.pool,
            "epochs": args.epochs,
            "threads": args.threads,
            "device": str(select_device(args.device)),
            "cpu_count": os.cpu_count(),
            "loadavg_before": [round(v, 2) for v in load_before],
            "loadavg_after": [round(v, 2) for v in load_after],
            "platform": platform.platform(),
            "torch": torch.__version__,
            "setup_s": round(setup_s, 2),
            "outcome": outcome.outcome,
            "version": outcome.version,
            "reason": outcome.reason,
            "durations_s": {k: round(v, 2) for k, v in outcome.durations.items()},
            "timed_s": round(
                sum(outcome.durations.get(p, 0.0) for p in ("train", "gate", "export", "publish")),
                2,
            ),
            "losses": [round(v, 4) for v in outcome.losses],
            "metrics": {k: round(v, 4) for k, v in outcome.metrics.items()},
            "classes": record.manifest["classes"] if record else None,
            "training_counts": record.manifest["training_counts"] if record else None,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.retrain", description=__doc__)
    parser.add_argument("--labels", type=int, default=5000, help="labelled stamps written")
    parser.add_argument("--pool", type=int, default=500, help="bootstrap pool (class normal)")
    parser.add_argument("--size", type=int, default=63, help="stamp side in pixels")
    parser.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    report = run(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0 if report["outcome"] in ("promoted", "rejected") else 1


if __name__ == "__main__":
    from services.common import logs

    logs.setup()
    raise SystemExit(main())
