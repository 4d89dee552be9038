"""CPU per alert of the scorer's handler, this checkout against another, in alternation.

    PYTHONPATH=$PWD python -m bench.scorer_ab --baseline /path/to/other/checkout --batch 19 256

The scorer's real handler (``services.scorer.app.Scorer``: decode, score for 100 users plus one
that takes everything, route, one Redis write per batch) runs in-process on 2,000 real ZTF alerts
(the samples, each copy with its own id) against a private Redis with ``appendfsync always``.
Per run: the CPU milliseconds per alert of the handler's process (the scorer's code and its
Redis client) and of the Redis server, and wall milliseconds per alert. Each checkout runs in its
own child process (``PYTHONPATH``; this module need not exist there, only the scorer and
``bench.throughput``'s helpers), alternately, so both see the same machine; one model, trained
once, serves both. No Kafka: the loop's produce and commit are not in these figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "data" / "alerts"


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child(batch: int, root: Path, samples: Path) -> dict[str, Any]:
    import numpy as np
    from confluent_kafka import Message
    from prometheus_client import CollectorRegistry

    from bench.throughput import _sample_alerts, _unique, _users
    from services.common import store
    from services.common.embedded import EmbeddedRedis
    from services.common.users import Budget, UserProfile
    from services.scorer.app import Scorer
    from services.scorer.metrics import ScorerMetrics
    from services.scorer.model import ModelSlot, load_model
    from services.scorer.settings import ScorerSettings

    messages = _unique(_sample_alerts(samples), 2000)
    with EmbeddedRedis() as server:
        assert server.process is not None
        r = store.connect(server.url)
        for u in _users(100, ["reserve", "normal"], np.random.default_rng(0)):
            store.save_profile(r, u)
        everything = UserProfile(name="latency", budget=Budget(alerts=10**6), strategy={"top": 1.0})
        store.save_profile(r, everything)
        slot = ModelSlot()
        slot.swap("ztf", load_model(root / "ztf" / "ztf-bench", threads=1))
        settings = ScorerSettings(model_dir=root, metrics_port=0)
        scorer = Scorer(settings, slot, r, ScorerMetrics(CollectorRegistry()), None)
        scorer.refresh_users(force=True)
        batches = [
            [
                Message(topic="a", partition=i % 4, offset=i, value=m, timestamp=(1, 10**12))
                for i, m in enumerate(messages[start : start + batch], start)
            ]
            for start in range(0, len(messages), batch)
        ]
        for b in batches[:3]:  # warm-up: first model runs, selectors, caches
            scorer(b)
        cpu, redis_cpu, wall = time.process_time(), _cpu(server.process.pid), time.perf_counter()
        n = 0
        for b in batches[3:]:
            scorer(b)
            n += len(b)
        return {
            "batch": batch,
            "scorer_cpu_ms_per_alert": round(1000 * (time.process_time() - cpu) / n, 4),
            "redis_cpu_ms_per_alert": round(1000 * (_cpu(server.process.pid) - redis_cpu) / n, 4),
            "wall_ms_per_alert": round(1000 * (time.perf_counter() - wall) / n, 4),
            "load1": round(os.getloadavg()[0], 2),
        }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", type=Path, required=True, help="the other checkout")
    p.add_argument("--batch", type=int, nargs="+", default=[19, 256])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--samples", type=Path, default=SAMPLES)
    p.add_argument("--json", type=Path, default=None, help="JSON lines, one per run")
    p.add_argument("--child", nargs=2, metavar=("BATCH", "MODEL"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(int(a.child[0]), Path(a.child[1]), a.samples)))
        return 0
    from bench.throughput import _model, _sample_alerts

    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        root = _model(Path(tmp), _sample_alerts(a.samples))
        for _ in range(a.rounds):
            for batch in a.batch:
                for name, path in (("baseline", a.baseline.resolve()), ("this", REPO)):
                    out = subprocess.run(
                        # by file: the checkout's own ``bench`` and ``services`` are imported
                        [sys.executable, __file__, "--baseline", str(path)]
                        + ["--samples", str(a.samples), "--child", str(batch), str(root)],
                        env={**os.environ, "PYTHONPATH": str(path)},
                        cwd=path,
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    line = {"checkout": name, **json.loads(out.stdout.strip().splitlines()[-1])}
                    print(json.dumps(line), flush=True)
                    lines.append(line)
    if a.json:
        a.json.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
