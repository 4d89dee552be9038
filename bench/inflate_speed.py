"""Gunzip of the real FITS stamps with each inflate library: CPU microseconds per stamp.

    PYTHONPATH=$PWD python -m bench.inflate_speed ../shared/data/alerts --json OUT

Every gzip-compressed ``stampData`` of every record under the folders is gunzipped by each
available library the way the decoder would use it (bounded: a stream that would inflate past the
per-stamp cap is refused), in alternating passes so that all see the same machine; the figure is
CPU time of this process (``time.process_time``) per stamp. Each library's output is compared
byte for byte with zlib's. Libraries: zlib (stdlib), ``isal`` (ISA-L), ``zlib_ng`` (zlib-ng) and
``deflate`` (libdeflate, one-shot into a buffer of the size the gzip trailer states).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro

from services.common.decoding.limits import GZIP, MAX_STAMP_BYTES

CUTOUTS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")


def stamps(folders: list[Path]) -> list[bytes]:
    out = []
    for path in sorted(p for f in folders for p in f.rglob("*.avro")):
        with path.open("rb") as fh:
            for record in fastavro.reader(fh):
                for name in CUTOUTS:
                    cutout = record.get(name) if isinstance(record, dict) else None
                    data = (cutout or {}).get("stampData")
                    if data and data[:2] == b"\x1f\x8b":
                        out.append(bytes(data))
    return out


def _streaming(module: Any) -> Callable[[bytes], bytes]:
    def gunzip(data: bytes) -> bytes:
        inflater = module.decompressobj(GZIP)
        out: bytes = inflater.decompress(data, MAX_STAMP_BYTES)
        if not inflater.eof:
            raise ValueError("truncated or too large")
        return out

    return gunzip


def _libdeflate(module: Any) -> Callable[[bytes], bytes]:
    def gunzip(data: bytes) -> bytes:
        size = int.from_bytes(data[-4:], "little")  # ISIZE; libdeflate checks it and the CRC
        if size > MAX_STAMP_BYTES:
            raise ValueError("too large")
        return bytes(module.gzip_decompress(data, size))

    return gunzip


def libraries() -> dict[str, Callable[[bytes], bytes]]:
    out = {"zlib": _streaming(zlib)}
    for name, import_name, make in (
        ("isal", "isal.isal_zlib", _streaming),
        ("zlib_ng", "zlib_ng.zlib_ng", _streaming),
        ("libdeflate", "deflate", _libdeflate),
    ):
        try:
            out[name] = make(importlib.import_module(import_name))
        except ImportError:
            continue
    return out


def measure(data: list[bytes], passes: int) -> dict[str, Any]:
    libs = libraries()
    reference = [libs["zlib"](d) for d in data]
    results: dict[str, Any] = {"stamps": len(data), "load1_before": os.getloadavg()[0]}
    cpu = {name: 0.0 for name in libs}
    for name, fn in libs.items():
        results.setdefault("identical", {})[name] = all(
            fn(d) == r for d, r in zip(data, reference, strict=True)
        )
    for _ in range(passes):
        for name, fn in libs.items():
            t = time.process_time()
            for d in data:
                fn(d)
            cpu[name] += time.process_time() - t
    n = passes * len(data)
    results["cpu_us_per_stamp"] = {name: round(1e6 * s / n, 2) for name, s in cpu.items()}
    results["speedup_vs_zlib"] = {name: round(cpu["zlib"] / s, 2) for name, s in cpu.items()}
    results["load1_after"] = os.getloadavg()[0]
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--passes", type=int, default=5)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    results = measure(stamps(a.folders), a.passes)
    text = json.dumps(results, indent=1)
    print(text)
    if a.json:
        a.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
