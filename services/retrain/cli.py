"""``ahunt bootstrap`` and ``ahunt retrain``.

    ahunt bootstrap --survey ztf --from DIR_OR_FILE... [--label normal] [--labels CSV] [--force]
    ahunt retrain [--now] [--survey S ...]

Both need the Redis that holds labels and the registry: ``--redis-url`` or ``REDIS_URL`` (an
embedded Redis would vanish with the command). Settings: ``AHUNT_RETRAIN_*``
(``services/retrain/settings.py``); the flags override the few that are per invocation.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.common.settings import require_redis_url
from services.retrain.settings import RetrainSettings

if TYPE_CHECKING:  # the command must load without torch (serving installs list it too)
    from services.retrain.candidate import RetrainOutcome

log = logging.getLogger("ahunt.retrain")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url", help="Redis with labels and registry (unset: REDIS_URL)")
    parser.add_argument("--json", action="store_true", help="print each outcome as one JSON line")


def add_bootstrap_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--survey", default="ztf", help="ztf or rubin")
    parser.add_argument(
        "--from",
        dest="sources",
        nargs="+",
        type=Path,
        required=True,
        help="alert files (.avro) or folders of them",
    )
    parser.add_argument("--label", default="normal", help="class of the unlabelled alerts")
    parser.add_argument("--labels", type=Path, help="CSV of alert_id,class for some alerts")
    parser.add_argument(
        "--epochs", type=int, help="training epochs (AHUNT_RETRAIN_BOOTSTRAP_EPOCHS)"
    )
    parser.add_argument(
        "--min-epoch-samples", type=int, help="draws per epoch at least (small = fast)"
    )
    parser.add_argument("--force", action="store_true", help="even if the survey has a live model")
    _common(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--now", action="store_true", help="retrain once now, then exit")
    parser.add_argument(
        "--survey", dest="surveys", action="append", help="survey to retrain (repeatable)"
    )
    _common(parser)


def _print(outcome: RetrainOutcome, as_json: bool) -> None:
    if as_json:
        data: dict[str, Any] = {
            "survey": outcome.survey,
            "outcome": outcome.outcome,
            "version": outcome.version,
            "parent_version": outcome.parent_version,
            "reason": outcome.reason,
            "metrics": outcome.metrics,
            "durations": {k: round(v, 3) for k, v in outcome.durations.items()},
            "losses": list(outcome.losses),
        }
        print(json.dumps(data, sort_keys=True), flush=True)
    else:
        total = outcome.durations.get("total", 0.0)
        print(
            f"{outcome.survey}: {outcome.outcome} {outcome.version or '-'} in {total:.1f} s: "
            f"{outcome.reason}",
            flush=True,
        )


def _connect(args: argparse.Namespace, settings: RetrainSettings) -> tuple[Any, Any] | None:
    url = require_redis_url(
        args.command, "the stack's Redis (labels and registry)", args.redis_url, has_option=True
    )
    from services.common import store
    from services.common.registry import Registry
    from services.common.settings import ModelSigningSettings

    try:
        model_keys = ModelSigningSettings().model_keys(url)
    except ValueError as exc:
        print(f"ahunt {args.command}: {exc}", file=sys.stderr)
        return None
    client = store.connect(url)
    return client, Registry(client, settings.registry_cache_dir, model_keys)


def bootstrap_main(args: argparse.Namespace) -> int:
    from services.retrain.bootstrap import (
        bootstrap,
        load_alerts,
        pool_examples,
        read_labels_csv,
        spec_for,
    )
    from services.retrain.metrics import RetrainMetrics
    from services.retrain.train import configure_threads

    overrides: dict[str, Any] = {}
    if args.epochs is not None:
        overrides["bootstrap_epochs"] = args.epochs
    if args.min_epoch_samples is not None:
        overrides["min_epoch_samples"] = args.min_epoch_samples
    settings = RetrainSettings(**overrides)
    connected = _connect(args, settings)
    if connected is None:
        return 2
    client, registry = connected
    configure_threads(settings.threads)
    files = sorted(
        p
        for source in args.sources
        for p in (source.glob("*.avro") if source.is_dir() else [source])
    )
    alerts = load_alerts(files, args.survey)
    if not alerts:
        print(f"ahunt bootstrap: no {args.survey} alerts in {len(files)} files", file=sys.stderr)
        return 2
    from models.preprocess import SURVEY_PREPROCESSING

    spec = spec_for(args.survey, alerts)
    labels = read_labels_csv(args.labels) if args.labels else {}
    examples = pool_examples(alerts, spec, SURVEY_PREPROCESSING, labels, args.label)
    log.info(
        "bootstrap: %d %s alerts, input %s, classes %s",
        len(alerts),
        args.survey,
        spec.shape,
        examples.counts(),
    )
    outcome = bootstrap(
        settings,
        client,
        registry,
        args.survey,
        examples,
        spec,
        SURVEY_PREPROCESSING,
        default_label=args.label,
        force=args.force,
        metrics=RetrainMetrics.default(),
    )
    _print(outcome, args.json)
    return 0 if outcome.outcome == "promoted" else 1


def main(args: argparse.Namespace) -> int:
    from services.retrain.app import RetrainLoop, retrain_once
    from services.retrain.metrics import RetrainMetrics
    from services.retrain.train import configure_threads

    settings = RetrainSettings(**({"surveys": args.surveys} if args.surveys else {}))
    connected = _connect(args, settings)
    if connected is None:
        return 2
    client, registry = connected
    configure_threads(settings.threads)
    metrics = RetrainMetrics.default()
    if args.now:
        outcomes = [
            retrain_once(settings, client, registry, survey, metrics) for survey in settings.surveys
        ]
        for outcome in outcomes:
            _print(outcome, args.json)
        return 1 if any(o.outcome == "failed" for o in outcomes) else 0

    metrics.serve(settings.metrics_port)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        log.info("stopping after the current run")
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info(
        "retraining %s every %g min or every %d labels (metrics on :%d)",
        settings.surveys,
        settings.interval_minutes,
        settings.min_new_labels,
        settings.metrics_port,
    )
    RetrainLoop(settings, client, registry, metrics).run(stop, lambda o: _print(o, args.json))
    return 0
