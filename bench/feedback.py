"""`ahunt feedback-bench`: label posts per second and latency of the feedback API over real HTTP.

Everything is real and local: a private Redis with ``appendonly yes`` + ``appendfsync always``
(every acknowledged label is fsynced), the embedded Kafka-protocol broker for the
``ahunt.feedback`` events, the API as its own process (``python -m services.feedback``, uvicorn,
``--workers`` processes), and the load generator in another process: asyncio keep-alive
connections that write prebuilt HTTP/1.1 requests and parse the status line and
``Content-Length`` (lighter than an HTTP client library, so the generator steals less CPU from
the server on a 2-core machine).

Two phases on the same server:

1. **closed loop**: ``--concurrency`` connections post back to back for ``--seconds``: capacity.
2. **open loop**: posts are scheduled at ``--rate`` per second whatever the answers; latency is
   measured from each post's *scheduled* time, so queueing behind a slow answer counts
   (no coordinated omission).

Posts go to ``--users`` users over a pool of ``--alerts`` cached alerts (stamps of the real ZTF
shape, 3x63x63 float32): the first label of an alert copies its stamp into the training set,
later ones (other users, re-labels: 200) do not. Each user has a fixed opinion per class
(interesting / not / none), as people do, so interest changes happen on first answers only.
After the run the labels in Redis are checked against the acknowledged posts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import redis

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("sn_ia", "agn", "artefact", "variable", "lens", "cv", "tde", "kn")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--alerts", type=int, default=2_000, help="cached alerts that can be labelled")
    p.add_argument("--concurrency", type=int, default=32, help="keep-alive connections")
    p.add_argument("--seconds", type=float, default=15.0, help="closed-loop phase (0 skips)")
    p.add_argument("--rate", type=float, default=1_000.0, help="open-loop posts/s (0 skips)")
    p.add_argument("--rate-seconds", type=float, default=15.0)
    p.add_argument("--warmup-seconds", type=float, default=2.0)
    p.add_argument("--workers", type=int, default=1, help="API worker processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="run the API under py-spy (pip install py-spy) and write this SVG/txt",
    )


# --- load generator (runs in its own process) -------------------------------------------------


def _request(host: str, port: int, token: str, body: bytes) -> bytes:
    return (
        f"POST /v1/feedback HTTP/1.1\r\nhost: {host}:{port}\r\nauthorization: Bearer {token}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body


def _plan(config: dict[str, Any], n: int, seed: int) -> list[tuple[bytes, str, str]]:
    """``n`` prebuilt posts: (request bytes, user, alert id)."""
    rng = random.Random(seed)
    users, alerts = config["users"], config["alerts"]
    out = []
    for _ in range(n):
        user, token = rng.choice(users)
        alert = rng.choice(alerts)
        # Users mostly agree on an alert's class; each has a fixed opinion per class.
        usual = CLASSES[zlib.crc32(alert.encode()) % len(CLASSES)]
        label = usual if rng.random() < 0.8 else rng.choice(CLASSES)
        opinion = (True, False, None)[zlib.crc32(f"{user}/{label}".encode()) % 3]
        body = json.dumps({"alert_id": alert, "label": label, "interesting": opinion}).encode()
        out.append((_request(config["host"], config["port"], token, body), user, alert))
    return out


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _phase(
    config: dict[str, Any],
    plan: list[tuple[bytes, str, str]],
    seconds: float,
    rate: float,
    concurrency: int,
) -> dict[str, Any]:
    """Closed loop (rate 0) or open loop at ``rate``; returns latencies and statuses."""
    latencies: list[float] = []
    per_second: dict[int, list[tuple[float, int]]] = {}  # second -> (latency, status)
    statuses: dict[int, int] = {}
    created: set[tuple[str, str]] = set()
    acked: set[tuple[str, str]] = set()
    queue: asyncio.Queue[tuple[float, int] | None] = asyncio.Queue()
    started = time.perf_counter()
    deadline = started + seconds
    counter = [0]

    async def schedule() -> None:
        i = 0
        while True:
            at = started + i / rate
            if at >= deadline:
                break
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait((at, i))
            i += 1
        for _ in range(concurrency):
            queue.put_nowait(None)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(config["host"], config["port"])
        try:
            while True:
                if rate > 0:
                    item = await queue.get()
                    if item is None:
                        return
                    t0, i = item
                else:
                    t0 = time.perf_counter()
                    if t0 >= deadline:
                        return
                    i = counter[0]
                    counter[0] += 1
                request, user, alert = plan[i % len(plan)]
                writer.write(request)
                status = await _read_response(reader)
                done = time.perf_counter()
                latencies.append(done - t0)
                per_second.setdefault(int(done - started), []).append((done - t0, status))
                statuses[status] = statuses.get(status, 0) + 1
                if status in (200, 201):
                    acked.add((user, alert))
                    if status == 201:
                        created.add((user, alert))
        finally:
            writer.close()

    tasks = [asyncio.create_task(connection()) for _ in range(concurrency)]
    if rate > 0:
        tasks.append(asyncio.create_task(schedule()))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    lat = np.array(latencies) * 1000
    ok = statuses.get(200, 0) + statuses.get(201, 0)
    return {
        "mode": "open" if rate > 0 else "closed",
        "target_rate": rate or None,
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "posts": len(latencies),
        "acknowledged": ok,
        "posts_per_s": round(ok / elapsed, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "latency_ms": {
            q: round(float(np.percentile(lat, p)), 2) if len(lat) else None
            for q, p in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9), ("max", 100))
        },
        "acked_pairs": sorted(acked),
        "created_pairs": len(created),
        # Per second of the phase: answers, 201s (a user's first label of an alert), p99 in ms.
        "timeline": [
            {
                "s": s,
                "posts": len(v),
                "created": sum(1 for _, st in v if st == 201),
                "p99_ms": round(float(np.percentile([x for x, _ in v], 99)) * 1000, 1),
            }
            for s, v in sorted(per_second.items())
        ],
    }


async def _loadgen(config: dict[str, Any]) -> dict[str, Any]:
    plan = _plan(config, 200_000, config["seed"])
    c = config["concurrency"]
    results: dict[str, Any] = {"warmup_posts": 0}
    if config["warmup_seconds"] > 0:
        warmup = await _phase(config, plan[-5000:], config["warmup_seconds"], 0, c)
        results["warmup_posts"] = warmup["posts"]
    cpu0 = time.process_time()
    if config["seconds"] > 0:
        results["closed"] = await _phase(config, plan, config["seconds"], 0, c)
    if config["rate"] > 0:
        shifted = plan[len(plan) // 2 :] + plan[: len(plan) // 2]
        results["open"] = await _phase(config, shifted, config["rate_seconds"], config["rate"], c)
    results["loadgen_cpu_s"] = round(time.process_time() - cpu0, 2)
    return results


def loadgen_main() -> None:
    config = json.loads(sys.stdin.read())
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(_loadgen(config))))


# --- orchestration ------------------------------------------------------------------------------


def _seed(redis_url: str, users: int, alerts: int, seed: int) -> dict[str, Any]:
    from services.common import store
    from services.feedback.tokens import add_user

    client = store.connect(redis_url)
    rng = np.random.default_rng(seed)
    tokens = [(f"user{u:04d}", add_user(client, f"user{u:04d}")) for u in range(users)]
    ids = [str(10**12 + i) for i in range(alerts)]
    stamp = rng.normal(size=(3, 63, 63)).astype(np.float32)
    cutout = b"\x1f\x8b" + bytes(2_000)  # size of a real gzipped stamp; never decoded here
    pipe = client.pipeline(transaction=False)
    for i, alert_id in enumerate(ids):
        meta = {
            "alert_id": alert_id,
            "survey": "ztf",
            "model_version": "bench-1",
            "classes": ["reserve", "normal"],
            "probs": [0.1, 0.9],
            "novelty": 0.5,
            "cached_at": time.time(),
        }
        store.cache_alert(pipe, alert_id, meta, stamp, [cutout] * 3, 86_400)
        name = tokens[i % users][0]
        store.record_delivery(
            pipe,
            name,
            alert_id,
            {
                "score": 0.5,
                "reason": "top",
                "model_version": "bench-1",
                "delivered_at": time.time(),
            },
            86_400,
            500,
        )
        if i % 500 == 499:
            pipe.execute()
    pipe.execute()
    # Compact the AOF the seeding grew (~100 MB of stamps), so an automatic rewrite triggered by
    # the seeding does not run during the measurement.
    _wait_for_rewrite(client)
    client.bgrewriteaof()
    _wait_for_rewrite(client)
    client.close()
    return {"users": tokens, "alerts": ids}


def _wait_for_rewrite(client: redis.Redis) -> None:
    time.sleep(0.2)
    while _info(client, "aof_rewrite_in_progress") or _info(client, "aof_rewrite_scheduled"):
        time.sleep(0.2)


def _info(client: redis.Redis, field: str) -> int:
    value = client.info("persistence").get(field, 0)
    return int(value) if isinstance(value, int | float | str) and str(value).isdigit() else 0


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError("the API did not become ready")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its children (workers), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = sum(int(x) for x in fields[11:15])
        total = ticks / os.sysconf("SC_CLK_TCK")
        children = Path(f"/proc/{pid}/task/{pid}/children")
        if children.exists():
            total += sum(_cpu_seconds(int(c)) for c in children.read_text().split())
        return total
    except (OSError, ValueError, IndexError):
        return float("nan")


def main(args: argparse.Namespace) -> int:
    from services.common import keys, labels, store
    from services.common.embedded import EmbeddedKafka, EmbeddedRedis, free_port

    with (
        tempfile.TemporaryDirectory(prefix="ahunt-fb-bench-") as tmp,
        EmbeddedRedis(directory=Path(tmp)) as redis_server,
    ):
        kafka = EmbeddedKafka().start()
        try:
            client = store.connect(redis_server.url)
            fsync = client.config_get("appendfsync")
            print(
                f"Redis {redis_server.url} {fsync} appendonly={client.config_get('appendonly')}",
                flush=True,
            )
            config = _seed(redis_server.url, args.users, args.alerts, args.seed)
            port = free_port()
            env = {
                **os.environ,
                "REDIS_URL": redis_server.url,
                "AHUNT_FEEDBACK_PORT": str(port),
                "AHUNT_FEEDBACK_WORKERS": str(args.workers),
                "AHUNT_FEEDBACK_LOG_LEVEL": "warning",
            }
            env["KAFKA_BOOTSTRAP_SERVERS"] = kafka.bootstrap_servers
            command = [sys.executable, "-m", "services.feedback"]
            if args.profile is not None:
                fmt = "raw" if args.profile.suffix == ".txt" else "flamegraph"
                command = [
                    "py-spy",
                    "record",
                    "--subprocesses",
                    "--format",
                    fmt,
                    "-o",
                    str(args.profile),
                    "--",
                    *command,
                ]
            api = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
            try:
                url = f"http://127.0.0.1:{port}"
                _wait_ready(url, api)
                config.update(
                    host="127.0.0.1",
                    port=port,
                    seed=args.seed,
                    concurrency=args.concurrency,
                    seconds=args.seconds,
                    rate=args.rate,
                    rate_seconds=args.rate_seconds,
                    warmup_seconds=args.warmup_seconds,
                )
                others = {"redis": redis_server.process, "kafka": kafka.process}
                api_cpu0 = _cpu_seconds(api.pid)
                others_cpu0 = {k: _cpu_seconds(p.pid) for k, p in others.items() if p}
                wall0 = time.perf_counter()
                gen = subprocess.run(
                    [sys.executable, "-m", "bench.feedback"],
                    input=json.dumps(config),
                    capture_output=True,
                    text=True,
                    cwd=REPO,
                    check=True,
                )
                wall = time.perf_counter() - wall0
                api_cpu = _cpu_seconds(api.pid) - api_cpu0
                others_cpu = {
                    f"{k}_cpu_s": round(_cpu_seconds(p.pid) - others_cpu0[k], 2)
                    for k, p in others.items()
                    if p
                }
                results = json.loads(gen.stdout)
                time.sleep(2.0)  # let the outbox publisher catch up
            finally:
                api.send_signal(2 if args.profile is not None else 15)  # py-spy stops on SIGINT
                api.wait(60)
            # Every acknowledged (user, alert) must be a stored label.
            acked = {
                tuple(p)
                for phase in ("closed", "open")
                if phase in results
                for p in results[phase].pop("acked_pairs")
            }
            missing = sum(
                1 for user, alert in acked if labels.get_label(client, user, alert) is None
            )
            report = {
                "command": "ahunt feedback-bench " + " ".join(sys.argv[2:]),
                "machine": {"cpus": os.cpu_count(), "loadavg_after": os.getloadavg()},
                "redis": {"appendfsync": fsync, "server": redis_server.server_binary()},
                "users": args.users,
                "alerts": args.alerts,
                "workers": args.workers,
                **results,
                "api_cpu_s": round(api_cpu, 2),
                "api_cpu_ms_per_post": round(
                    1000
                    * api_cpu
                    / max(
                        1,
                        results["warmup_posts"]
                        + sum(results[p]["posts"] for p in ("closed", "open") if p in results),
                    ),
                    3,
                ),
                **others_cpu,
                "wall_s": round(wall, 2),
                "labels_acknowledged_pairs": len(acked),
                "labels_missing_after_run": missing,
                # 0: every label's event was acknowledged by the broker (the outbox is trimmed
                # only after that).
                "outbox_left": client.llen(keys.FEEDBACK_OUTBOX),
                "aof_rewrite_in_progress_after": _info(client, "aof_rewrite_in_progress"),
                "aof_base_size_mb": round(_info(client, "aof_base_size") / 2**20, 1),
                "aof_current_size_mb": round(_info(client, "aof_current_size") / 2**20, 1),
            }
            client.close()
        finally:
            kafka.stop()
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if missing == 0 else 1


if __name__ == "__main__":
    loadgen_main()
