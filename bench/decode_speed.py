"""Decoding speed of ``decode_message`` on real packets: records per CPU second, one process.

    PYTHONPATH=$PWD python -m bench.decode_speed ../shared/data/alerts/{ztf,ztf-fink,ztf-real}

Every ``.avro`` file under the folders is one Kafka message. Each pass decodes all of them; the
figure is records / CPU seconds of this process (``time.process_time``), so a shared machine
changes it less than wall time would. Two modes, measured in alternation so that both see the
same machine: ``full`` (Avro + the three FITS stamps: what the scorer pays) and ``avro`` (the
stamp decoder replaced by a stub: the container reader, the projection and the record checks
alone, where a change of the schema handling shows). Pass ``--baseline DIR`` to measure the code
of another checkout in the same sitting (it is imported in a child process with
``PYTHONPATH=DIR``; this script itself need not exist there).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _payloads(folders: list[Path]) -> list[bytes]:
    files = sorted(p for folder in folders for p in folder.rglob("*.avro"))
    if not files:
        raise SystemExit(f"no .avro files under {', '.join(map(str, folders))}")
    return [p.read_bytes() for p in files]


def _stub_stamps() -> None:
    """Replace the stamp decoder wherever the decoder imported it (module layouts differ)."""
    from services.common import cutouts

    original = cutouts.decode_stamp
    image = np.zeros((63, 63), np.float32)
    image.flags.writeable = False
    for module in list(sys.modules.values()):
        name = getattr(module, "__name__", "")
        if name.startswith("services.") and getattr(module, "decode_stamp", None) is original:
            module.decode_stamp = lambda data, **_: image  # type: ignore[attr-defined]


def measure(payloads: list[bytes], mode: str, passes: int) -> dict[str, Any]:
    from services.common.alerts import Alert, decode_message

    if mode == "avro":
        _stub_stamps()
    decoded = sum(isinstance(r, Alert) for p in payloads for r in decode_message(p))  # warm up
    best = 0.0
    for _ in range(passes):
        start = time.process_time()
        for payload in payloads:
            decode_message(payload)
        best = max(best, decoded / (time.process_time() - start))
    return {"mode": mode, "messages": len(payloads), "records": decoded, "records_per_cpu_s": best}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.decode_speed", description=__doc__)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--passes", type=int, default=3, help="best of this many passes")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the checkouts")
    parser.add_argument("--baseline", type=Path, help="another checkout to measure alongside")
    parser.add_argument("--child", choices=("full", "avro"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    payloads = _payloads(args.folders)
    if args.child:
        print(json.dumps(measure(payloads, args.child, args.passes)))
        return
    checkouts = {"this": Path.cwd()}
    if args.baseline:
        checkouts = {"baseline": args.baseline.resolve(), **checkouts}
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for mode in ("full", "avro"):
            for label, root in checkouts.items():
                # a fresh process per measurement: no cache or stub leaks from one to the next
                out = subprocess.run(
                    [sys.executable, __file__, *map(str, args.folders)]
                    + ["--passes", str(args.passes), "--child", mode],
                    env={**os.environ, "PYTHONPATH": str(root)},
                    cwd=root,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                row = json.loads(out.stdout.splitlines()[-1])
                results.setdefault((label, mode), []).append(row["records_per_cpu_s"])
                print(
                    f"{label:9s} {mode:5s} {row['records']} records: "
                    f"{row['records_per_cpu_s']:,.0f} records/CPU s",
                    flush=True,
                )
    print("best of each:")
    for (label, mode), rates in results.items():
        print(f"  {label:9s} {mode:5s} {max(rates):,.0f} records/CPU s")


if __name__ == "__main__":
    main()
