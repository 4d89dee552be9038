"""``ahunt models``: inspect and operate the model registry (``services.common.registry``).

    ahunt models list [--survey S] [--json]     versions, status, live marker, lineage, metrics
    ahunt models show V                         one version's record and manifest (JSON)
    ahunt models publish DIR [--promote]        upload an exported model directory (candidate)
    ahunt models promote V                      make V live on every scorer (signature checked)
    ahunt models sign V [V...]                  re-sign with the current key (rotation, upgrades)
    ahunt models reject V --reason R            V can never be promoted
    ahunt models rollback --survey S            the previously live version becomes live
    ahunt models fetch V --to DIR               copy V out as DIR/<survey>/<version>/ (backup)

Redis comes from ``--redis-url`` or ``REDIS_URL``; the signing key from
``AHUNT_MODEL_SIGNING_KEY`` (``services.common.settings.ModelSigningSettings``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from services.common import store
from services.common.registry import ModelRecord, Registry, RegistryError, survey_of
from services.common.settings import ModelSigningSettings, require_redis_url

_METRICS_SHOWN = 4


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def metrics_summary(metrics: dict[str, float], limit: int = _METRICS_SHOWN) -> str:
    """A few metrics, sorted by name, 3 significant digits.

    >>> metrics_summary({"recall": 0.91234, "auc": 0.8, "x": 1, "y": 2, "z": 3})
    'auc=0.8 recall=0.912 x=1 y=2 (+1)'
    """
    names = sorted(metrics)
    shown = " ".join(f"{k}={metrics[k]:.3g}" for k in names[:limit])
    more = len(names) - limit
    return (shown + (f" (+{more})" if more > 0 else "")) or "-"


def format_table(records: Sequence[ModelRecord]) -> str:
    """The ``list`` table: ``*`` marks the live version of its survey.

    >>> format_table([])
    'no models in the registry'
    """
    if not records:
        return "no models in the registry"
    header = ("", "VERSION", "STATUS", "CREATED (UTC)", "PARENT", "METRICS", "REASON")
    rows = [
        (
            "*" if r.status == "live" else "",
            r.version,
            r.status,
            _when(r.created_at),
            r.parent or "-",
            metrics_summary(r.metrics),
            r.reason or "",
        )
        for r in records
    ]
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table)
    return "\n".join(line.rstrip() for line in lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url", help="Redis holding the registry (unset: REDIS_URL)")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="versions, status, live marker, metrics")
    listing.add_argument("--survey")
    listing.add_argument("--json", action="store_true", help="one JSON record per line")
    actions.add_parser("show", help="one version's record and manifest").add_argument("version")
    publish = actions.add_parser("publish", help="upload an exported model directory")
    publish.add_argument("directory", type=Path)
    publish.add_argument("--promote", action="store_true", help="and make it live")
    actions.add_parser("promote", help="make a version live").add_argument("version")
    sign = actions.add_parser(
        "sign",
        help="sign versions with the current key: after a key rotation (their signature must "
        "verify with an accepted key), or versions published before models were signed",
    )
    sign.add_argument("versions", nargs="+")
    reject = actions.add_parser("reject", help="mark a version as never to be promoted")
    reject.add_argument("version")
    reject.add_argument("--reason", required=True)
    rollback = actions.add_parser("rollback", help="the previously live version becomes live")
    rollback.add_argument("--survey", required=True)
    prune = actions.add_parser(
        "prune", help="delete old versions: keep the live one, N rollback targets, N most recent"
    )
    prune.add_argument("--survey", required=True)
    prune.add_argument("--keep", type=int, default=10)
    fetch = actions.add_parser("fetch", help="copy a version out as DIR/<survey>/<version>/")
    fetch.add_argument("version")
    fetch.add_argument("--to", type=Path, required=True, dest="to")


def _copy_out(registry: Registry, version: str, destination: Path) -> Path:
    survey = survey_of(version)
    target = destination / survey / version
    if target.exists():
        raise RegistryError(f"{target} already exists")
    path = registry.fetch(survey, version)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(path, target)
    return target


def run(args: argparse.Namespace, registry: Registry) -> int:
    action = args.action
    if action == "list":
        records = registry.list(args.survey)
        if args.json:
            for r in records:
                print(r.model_dump_json())
        else:
            print(format_table(records))
    elif action == "show":
        record = registry.record(survey_of(args.version), args.version)
        if record is None:
            raise RegistryError(f"unknown model version {args.version}")
        shown = {**record.model_dump(), "history": registry.history(record.survey)}
        print(json.dumps(shown, indent=2, sort_keys=True))
    elif action == "publish":
        record = registry.publish(args.directory)
        print(f"published {record.version} ({record.size} bytes, sha256 {record.sha256})")
        if args.promote:
            registry.promote(record.survey, record.version)
            print(f"{record.version} is live")
    elif action == "promote":
        registry.promote(survey_of(args.version), args.version)
        print(f"{args.version} is live")
    elif action == "sign":
        for version in args.versions:
            adopted = registry.sign(survey_of(version), version)
            note = " (it was unsigned: you vouch for where it came from)" if adopted else ""
            print(f"{version} signed with the current key{note}")
    elif action == "reject":
        registry.reject(survey_of(args.version), args.version, args.reason)
        print(f"{args.version} rejected")
    elif action == "rollback":
        print(f"{args.survey}: {registry.rollback(args.survey)} is live")
    elif action == "prune":
        deleted = registry.prune(args.survey, args.keep)
        print(f"{args.survey}: deleted {', '.join(deleted) if deleted else 'nothing'}")
    elif action == "fetch":
        print(_copy_out(registry, args.version, args.to))
    else:  # pragma: no cover - argparse restricts the choices
        raise AssertionError(action)
    return 0


def main(args: argparse.Namespace) -> int:
    url = require_redis_url("models", "the model registry's Redis", args.redis_url, has_option=True)
    try:
        model_keys = ModelSigningSettings().model_keys(url)
    except ValueError as exc:
        print(f"ahunt models: {exc}", file=sys.stderr)
        return 2
    client = store.connect(url)
    with tempfile.TemporaryDirectory(prefix="ahunt-models-") as cache:
        try:
            return run(args, Registry(client, Path(cache), model_keys))
        except (RegistryError, ValueError, FileNotFoundError) as exc:
            print(f"ahunt models {args.action}: {exc}", file=sys.stderr)
            return 1
        finally:
            client.close()
