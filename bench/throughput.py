"""`ahunt bench throughput`: the scorer measured through a real broker, with its stage ceilings.

Three measurements in one run, so ratios are comparable (machines are shared and noisy):

1. **Stage ceilings**, in this process on one core: decode (Avro + 3 FITS stamps), preprocessing,
   onnxruntime inference (1 thread), personal scores + selection for 1, 100 and 1,000 users.
2. **Backlog throughput**: N real ZTF alerts (the samples, each copy with its own alert id) are
   waiting on a topic with P partitions; W scorer processes in one consumer group drain it. The
   rate counts from the first commit (model loading and the group join excluded) to the last.
3. **Latency at a steady rate**: alerts are replayed at R/s while the scorers run; a user whose
   budget takes everything receives each alert, and the consume-to-publish latency is the output
   message's timestamp minus the input's (carried in the ``ahunt-source-timestamp-ms`` header).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import TopicPartition

from bench.cpu import CpuMeter, roles, runnable

REPO = Path(__file__).resolve().parents[1]
WARMUP_S = 5.0  # seconds of traffic before the latency clock starts
INGEST_S = 5.0  # seconds of the paced producer alone, before the scorers start


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--samples",
        type=Path,
        default=REPO.parent / "shared/data/alerts",
        help="folder with ztf/ and ztf-fink/ sample packets",
    )
    p.add_argument("--alerts", type=int, default=20_000, help="backlog size")
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--workers", type=int, default=2, help="scorer processes")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--latency-rate", type=float, default=250.0, help="alerts/s (0 skips)")
    p.add_argument("--latency-seconds", type=float, default=30.0)
    p.add_argument(
        "--latency-batch", type=int, default=64, help="the scorers' batch cap at the steady rate"
    )
    p.add_argument(
        "--latency-poll-s",
        type=float,
        default=None,
        help="the scorers' poll wait at the steady rate (AHUNT_SCORER_POLL_TIMEOUT_S: how long "
        "a batch gathers alerts when fewer than the cap arrive); default: the scorer's own "
        "(before 2026-12-07 the bench always used 0.02)",
    )
    p.add_argument(
        "--ceiling-seconds",
        type=float,
        default=10.0,
        help="run ../shared/tools/ceiling.py (the single-process reference pipeline) for this "
        "many seconds per stage after the scorer phases, and report the ratios (0 skips)",
    )
    p.add_argument(
        "--scorer-checkout",
        type=Path,
        default=None,
        help="run the scorer processes from this other checkout (e.g. a worktree of an older "
        "commit), so one sitting compares two scorers under the same bench (default: this one)",
    )
    p.add_argument("--json", type=Path, default=None)


def _sample_alerts(folder: Path) -> list[bytes]:
    from services.common.replay import messages_from_files

    files = sorted([*folder.glob("ztf/*.avro"), *folder.glob("ztf-fink/*.avro")])
    if not files:
        raise SystemExit(f"no ZTF sample packets under {folder}")
    return list(messages_from_files(files))


def _unique(payloads: list[bytes], n: int) -> list[bytes]:
    """n messages cycling through the samples, each with its own candid (alert id)."""
    import io

    import fastavro

    parsed = []
    for p in payloads:
        reader = fastavro.reader(io.BytesIO(p))
        parsed.append((reader.writer_schema, next(iter(reader))))
    out = []
    for i in range(n):
        schema, record = parsed[i % len(parsed)]
        record = dict(record)  # type: ignore[arg-type]
        record["candid"] = int(record["candid"]) % 2**61 + (i // len(parsed)) * 2**52
        buf = io.BytesIO()
        fastavro.writer(buf, schema, [record])
        out.append(buf.getvalue())
    return out


def _model(root: Path, payloads: list[bytes]) -> Path:
    """A real (small) model trained on the sample stamps, exported and promoted."""
    import torch

    from models.export import export_onnx
    from models.learner import AhuntLearner, LearnerConfig
    from models.preprocess import SURVEY_PREPROCESSING, ZTF_SPEC, assemble, fit_stamp, preprocess
    from services.common import model_store
    from services.common.alerts import Alert, decode_message

    torch.set_num_threads(1)
    alerts = [r for p in payloads for r in decode_message(p) if isinstance(r, Alert)]
    raw, valid = assemble([[fit_stamp(s, 63, 63)[0] for s in a.cutouts] for a in alerts], ZTF_SPEC)
    x = preprocess(raw, SURVEY_PREPROCESSING, valid)
    learner = AhuntLearner(ZTF_SPEC, ["normal"], LearnerConfig(pretrain_epochs=2), seed=0)
    learner.fit(x, ["normal"] * len(x))
    learner.fit_detector(x)
    export_onnx(
        learner,
        root / "ztf" / "ztf-bench",
        version="ztf-bench",
        survey="ztf",
        preprocessing=SURVEY_PREPROCESSING,
    )
    model_store.promote(root, "ztf", "ztf-bench")
    return root


def _users(n: int, classes: list[str], rng: np.random.Generator) -> list[Any]:
    from services.common.users import Budget, UserProfile

    users = []
    for i in range(n):
        weights = {c: float(rng.random()) for c in classes[1:] if rng.random() < 0.5}
        users.append(
            UserProfile(
                name=f"bench{i:04d}",
                weights=weights,
                reserve_share=float(rng.uniform(0.1, 0.5)),
                budget=Budget(alerts=20),
            )
        )
    return users


def stage_ceilings(
    messages: list[bytes],
    model_dir: Path,
    rng: np.random.Generator,
) -> dict[str, float]:
    """Alerts per second of each stage on one core (onnxruntime 1 thread)."""
    from services.common.alerts import Alert, decode_message
    from services.scorer.handler import eligibility, prepare_stamps
    from services.scorer.model import load_model
    from services.scorer.selection import selector_for

    sample = messages[:2_000]
    t = time.perf_counter()
    alerts = [r for m in sample for r in decode_message(m) if isinstance(r, Alert)]
    out: dict[str, float] = {"decode_avro_and_stamps": len(sample) / (time.perf_counter() - t)}
    model = load_model(model_dir / "ztf" / "ztf-bench", threads=1)
    t = time.perf_counter()
    x = prepare_stamps(alerts, model)
    out["preprocess"] = len(alerts) / (time.perf_counter() - t)
    t = time.perf_counter()
    inference = model.infer(x, batch_size=256)
    out["inference_1_thread"] = len(alerts) / (time.perf_counter() - t)
    from models.interest import exploration_scores, personal_scores, weight_matrix

    for n_users in (1, 100, 1000):
        users = _users(n_users, model.classes, rng)
        weights = weight_matrix([u.interest for u in users], model.classes)
        selector = selector_for(users)
        t = time.perf_counter()
        for start in range(0, len(alerts), 256):
            sl = slice(start, start + 256)
            scores = personal_scores(
                exploration_scores(inference.probs[sl], inference.novelty[sl], 0.5), weights
            )
            selector.select(scores, 1e9 + start, eligibility(alerts[sl], users), rng)
        out[f"scores_and_selection_{n_users}_users"] = len(alerts) / (time.perf_counter() - t)
    # The whole pure core per alert, with 1 and 1,000 users: the ratio the issue targets.
    for n_users in (1, 1000):
        per_alert = (
            1 / out["preprocess"]
            + 1 / out["inference_1_thread"]
            + 1 / out[f"scores_and_selection_{n_users}_users"]
        )
        out[f"scoring_core_{n_users}_users"] = 1 / per_alert
    out["cost_ratio_1000_vs_1_users"] = out["scoring_core_1_users"] / out["scoring_core_1000_users"]
    return out


def _scorer_default(checkout: Path | None, name: str) -> Any:
    """A scorer setting's default as ``checkout``'s code states it (its own process: another
    checkout's modules are not importable here)."""
    code = (
        "import json; from services.scorer.settings import ScorerSettings as S; "
        f"print(json.dumps(S.model_fields[{name!r}].default))"
    )
    root = (checkout or REPO).resolve()
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def _workers(
    n: int,
    env: dict[str, str],
    metrics_ports: list[int] | None = None,
    checkout: Path | None = None,
) -> list[subprocess.Popen[bytes]]:
    ports = metrics_ports or [0] * n
    root = (checkout or REPO).resolve()
    return [
        subprocess.Popen(
            [sys.executable, "-m", "services.scorer"],
            cwd=root,
            env={
                **os.environ,
                **env,
                "PYTHONPATH": str(root),
                "AHUNT_SCORER_METRICS_PORT": str(ports[i]),
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(n)
    ]


def stage_summary(metrics_urls: list[str]) -> dict[str, Any]:
    """Per scorer stage, over every worker: batches, mean and the bucket bound of the p99 of
    ``ahunt_scorer_stage_seconds`` (where the time of a slow batch went); and the deliveries
    published to users' topics."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    buckets: dict[str, dict[float, float]] = {}
    sums: dict[str, float] = {}
    cpu: dict[str, float] = {}
    producer_ms: dict[str, float] = {}  # librdkafka's windows, worst worker
    published = consumed = 0.0
    for url in metrics_urls:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            if family.name == "ahunt_scorer_published":
                published += sum(s.value for s in family.samples if s.name.endswith("_total"))
            if family.name == "ahunt_scorer_alerts_consumed":
                consumed += sum(s.value for s in family.samples if s.name.endswith("_total"))
            if family.name == "ahunt_scorer_producer_latency_seconds":
                for sample in family.samples:
                    name = f"{sample.labels['window']}_{sample.labels['quantile']}"
                    producer_ms[name] = max(producer_ms.get(name, 0.0), 1000 * sample.value)
            if family.name == "ahunt_scorer_stage_cpu_seconds":
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        stage = sample.labels.get("stage", "")
                        cpu[stage] = cpu.get(stage, 0.0) + sample.value
            if family.name != "ahunt_scorer_stage_seconds":
                continue
            for sample in family.samples:
                stage = sample.labels.get("stage", "")
                if sample.name.endswith("_bucket"):
                    bound = float(sample.labels["le"])
                    per = buckets.setdefault(stage, {})
                    per[bound] = per.get(bound, 0.0) + sample.value
                elif sample.name.endswith("_sum"):
                    sums[stage] = sums.get(stage, 0.0) + sample.value
    out: dict[str, Any] = {"published": published, "consumed": consumed}
    if producer_ms:
        out["producer_latency_ms"] = {k: round(v, 2) for k, v in sorted(producer_ms.items())}
    for stage, per in buckets.items():
        bounds = sorted(per)
        count = per[bounds[-1]]
        if not count:
            continue
        p99 = next(b for b in bounds if per[b] >= 0.99 * count)
        out[stage] = {
            "batches": count,
            "mean_ms": round(1000 * sums.get(stage, 0.0) / count, 2),
            "p99_le_ms": 1000 * p99,
        }
        if consumed:  # per alert: wall time in the stage, and the scoring thread's CPU there
            out[stage]["ms_per_alert"] = round(1000 * sums.get(stage, 0.0) / consumed, 4)
            if stage in cpu:
                out[stage]["cpu_ms_per_alert"] = round(1000 * cpu[stage] / consumed, 4)
    return out


def _revision(checkout: Path) -> str:
    """The commit a checkout is at (its path where git cannot tell)."""
    done = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() or str(checkout)


def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    from services.common.kafka import consumer
    from services.common.settings import KafkaSettings

    c = consumer(KafkaSettings(), bootstrap, group)
    try:
        parts = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return sum(max(tp.offset, 0) for tp in parts)
    finally:
        c.close()


def run(a: argparse.Namespace) -> dict[str, Any]:
    from services.common import store
    from services.common.infra import endpoints
    from services.common.kafka import Delivery, OutMessage, consumer, ensure_topics, producer
    from services.common.settings import KafkaSettings, RedisSettings
    from services.common.topics import user_topic
    from services.common.users import Budget, UserProfile

    rng = np.random.default_rng(0)
    samples = _sample_alerts(a.samples)
    messages = _unique(samples, a.alerts)
    results: dict[str, Any] = {
        "config": {k: str(v) for k, v in vars(a).items() if k not in ("run", "log_level")}
    }
    kafka = KafkaSettings(topic_partitions=a.partitions)
    with (
        tempfile.TemporaryDirectory() as tmp,
        endpoints(kafka.bootstrap_servers, RedisSettings().url) as ep,
    ):
        root = _model(Path(tmp), samples)
        print("stage ceilings (one core) ...", file=sys.stderr, flush=True)
        results["stage_ceilings_per_s"] = stage_ceilings(messages, root, rng)
        r = store.connect(ep.redis)
        for u in _users(a.users, ["reserve", "normal"], rng):
            store.save_profile(r, u)
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": ep.kafka,
            "REDIS_URL": ep.redis,
            "KAFKA_SESSION_TIMEOUT_MS": "6000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
            "AHUNT_SCORER_MODEL_DIR": str(root),
            "AHUNT_SCORER_BATCH_SIZE": str(a.batch),
        }

        # -- backlog throughput ------------------------------------------------------------
        topic, group = f"bench.{uuid.uuid4().hex[:8]}", f"bench-{uuid.uuid4().hex[:8]}"
        ensure_topics(kafka, ep.kafka, [topic], partitions=a.partitions)
        delivery = Delivery(producer(kafka, ep.kafka))
        produce_meter = CpuMeter(roles())
        for start in range(0, len(messages), 1000):
            delivery.send([OutMessage(topic, m) for m in messages[start : start + 1000]])
        results["cpu_produce_backlog"] = produce_meter.stop(len(messages))
        del delivery  # its client must not outlive the broker (it would log reconnects)
        print(
            f"backlog of {len(messages)} alerts on {a.partitions} partitions; "
            f"{a.workers} scorers ...",
            file=sys.stderr,
            flush=True,
        )
        from services.common.embedded import free_port

        backlog_ports = [free_port() for _ in range(a.workers)]
        procs = _workers(
            a.workers,
            {
                **env,
                "AHUNT_SCORER_INPUT_TOPICS": json.dumps([topic]),
                "AHUNT_SCORER_GROUP_ID": group,
            },
            backlog_ports,
            a.scorer_checkout,
        )
        try:
            t_first = done_first = None
            meter: CpuMeter | None = None
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                done = _committed(ep.kafka, group, topic, a.partitions)
                now = time.monotonic()
                if done and t_first is None:
                    t_first, done_first = now, done
                    meter = CpuMeter(roles({"scorer": [p.pid for p in procs]}))
                if done >= len(messages):
                    break
                time.sleep(0.25)
            assert t_first is not None and done_first is not None, "the scorers committed nothing"
            elapsed = time.monotonic() - t_first
            results["backlog"] = {
                "alerts": len(messages),
                "users": a.users,
                "workers": a.workers,
                "scorer_checkout": _revision(a.scorer_checkout or REPO),
                "partitions": a.partitions,
                "alerts_per_s": (done - done_first) / max(elapsed, 1e-9),
                "seconds": elapsed,
                "completed": done >= len(messages),
            }
            assert meter is not None
            # CPU per alert of each process between the first commit and the last
            results["cpu_backlog"] = meter.stop(done - done_first)
            results["backlog"]["scorers"] = stage_summary(
                [f"http://127.0.0.1:{p}/metrics" for p in backlog_ports]
            )
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(30)

        # -- latency at a steady rate ------------------------------------------------------
        if a.latency_rate > 0:
            watcher = UserProfile(
                name="latency", budget=Budget(alerts=1_000_000), strategy={"top": 1.0}
            )
            store.save_profile(r, watcher)
            topic, group = f"lat.{uuid.uuid4().hex[:8]}", f"lat-{uuid.uuid4().hex[:8]}"
            ensure_topics(kafka, ep.kafka, [topic, user_topic("latency")], partitions=a.partitions)
            results["cpu_ingest"] = _ingest(kafka, ep.kafka, messages, a.latency_rate, a.partitions)
            poll_s = a.latency_poll_s
            if poll_s is None:  # the scorer's default, as the checkout under test states it
                poll_s = _scorer_default(a.scorer_checkout, "poll_timeout_s")
            ports = [free_port() for _ in range(a.workers)]
            procs = _workers(
                a.workers,
                {
                    **env,
                    "AHUNT_SCORER_INPUT_TOPICS": json.dumps([topic]),
                    "AHUNT_SCORER_GROUP_ID": group,
                    "AHUNT_SCORER_BATCH_SIZE": str(a.latency_batch),
                    "AHUNT_SCORER_POLL_TIMEOUT_S": str(poll_s),
                    # librdkafka's windows: the last one read at the end covers the steady state
                    "KAFKA_STATISTICS_INTERVAL_MS": str(int(1000 * a.latency_seconds)),
                },
                ports,
                a.scorer_checkout,
            )
            try:
                time.sleep(15)  # model load and group join, before the clock starts
                reader = consumer(kafka, ep.kafka, f"r-{uuid.uuid4().hex[:6]}")
                reader.subscribe([user_topic("latency")])
                # A warm-up at the same rate first (new topics' metadata, first fetches, caches):
                # its outputs are counted apart, the percentiles are for the steady state.
                warmup = int(a.latency_rate * WARMUP_S)
                n = warmup + int(a.latency_rate * a.latency_seconds)
                steady_from_ms = None
                paced = producer(kafka, ep.kafka, **{"linger.ms": 0})
                t_start = time.perf_counter()
                latencies: list[float] = []
                warm: list[float] = []
                sent = 0
                lat_meter: CpuMeter | None = None
                run_queue: list[int] = []  # runnable processes, sampled every 100 ms
                next_sample = 0.0
                while sent < n or len(latencies) + len(warm) < sent:
                    target = min(n, int((time.perf_counter() - t_start) * a.latency_rate))
                    while sent < target:
                        if sent == warmup:
                            steady_from_ms = int(time.time() * 1000)
                            lat_meter = CpuMeter(roles({"scorer": [p.pid for p in procs]}))
                        paced.produce(topic, messages[sent % len(messages)])
                        sent += 1
                    paced.poll(0)
                    if steady_from_ms is not None and time.perf_counter() >= next_sample:
                        run_queue.append(runnable())
                        next_sample = time.perf_counter() + 0.1
                    for m in reader.consume(500, 0.01):
                        if m.error() is None:
                            src = dict(m.headers() or []).get("ahunt-source-timestamp-ms")
                            if src is None:
                                raise RuntimeError(f"no source timestamp header: {m.headers()}")
                            source_ms = int(src or b"0")
                            latency_ms = m.timestamp()[1] - source_ms
                            if steady_from_ms is not None and source_ms >= steady_from_ms:
                                latencies.append(latency_ms)
                            else:
                                warm.append(latency_ms)
                    if time.perf_counter() - t_start > WARMUP_S + a.latency_seconds + 60:
                        break
                paced.flush(10)
                del paced
                reader.close()
                if lat_meter is not None:  # steady state: paced producer and reader are "bench"
                    results["cpu_latency"] = lat_meter.stop(sent - warmup)
                    _without_ingest(results["cpu_latency"], results["cpu_ingest"])
                lat = np.array(latencies, dtype=np.float64)
                results["latency"] = {
                    "rate_per_s": a.latency_rate,
                    "batch_cap": a.latency_batch,
                    "poll_s": poll_s,
                    "sent": sent,
                    "warmup_sent": warmup,
                    "warmup_max_ms": float(max(warm)) if warm else None,
                    "received": int(lat.size) + len(warm),
                    "p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
                    "p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
                    "max_ms": float(lat.max()) if lat.size else None,
                    # the machine's run queue in the steady state (2 cores: > 2 means waiting)
                    "run_queue": {
                        "cores": os.cpu_count(),
                        "p50": float(np.percentile(run_queue, 50)) if run_queue else None,
                        "p99": float(np.percentile(run_queue, 99)) if run_queue else None,
                        "max": max(run_queue) if run_queue else None,
                    },
                    # warm-up included: where a slow batch's time went
                    "scorers": stage_summary([f"http://127.0.0.1:{p}/metrics" for p in ports]),
                }
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    proc.wait(30)
    if a.ceiling_seconds > 0:
        results["reference"] = reference(a.samples, a.ceiling_seconds, results)
    return results


CEILING = REPO.parent / "shared" / "tools" / "ceiling.py"


def reference(samples: Path, seconds: float, results: dict[str, Any]) -> dict[str, Any]:
    """``../shared/tools/ceiling.py`` right after the scorer phases (same machine, same
    sitting): its end-to-end single-process pipeline, and the ratios the issue targets."""
    if not CEILING.exists():
        return {"error": f"{CEILING} not found"}
    print("reference pipeline (ceiling.py) ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ceiling.json"
        proc = subprocess.run(
            [sys.executable, str(CEILING), str(samples), "--seconds", str(seconds)]
            + ["--json", str(out)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if not out.exists():
            return {"error": f"ceiling.py exited {proc.returncode}: {proc.stderr[-2000:]}"}
        ceiling = json.loads(out.read_text())
    e2e = ceiling.get("details", {}).get("e2e", {})
    e2e_cpu = e2e.get("cpu", {})
    ref: dict[str, Any] = {
        "e2e_per_s": ceiling.get("e2e_per_s"),
        "e2e_p50_ms": ceiling.get("e2e_p50_ms"),
        "e2e_p99_ms": ceiling.get("e2e_p99_ms"),
        "decode_per_s": ceiling.get("decode_per_s"),
        "infer_per_s": ceiling.get("infer_per_s"),
        "others_load": ceiling.get("others_load"),
        "exit_code": proc.returncode,
    }
    alerts = e2e.get("alerts")
    if alerts and e2e_cpu.get("wall_s"):
        wall = e2e_cpu["wall_s"]
        ref["cpu_ms_per_alert"] = {
            "pipeline": round(1000 * (e2e_cpu.get("own_cpu_cores") or 0) * wall / alerts, 4),
            "broker": round(1000 * (e2e_cpu.get("broker_cpu_cores") or 0) * wall / alerts, 4),
        }
    backlog, latency = results.get("backlog", {}), results.get("latency", {})
    if ref["e2e_per_s"] and backlog.get("alerts_per_s"):
        ref["backlog_over_reference_rate"] = round(backlog["alerts_per_s"] / ref["e2e_per_s"], 3)
    if ref["e2e_p99_ms"] and latency.get("p99_ms"):
        ref["p99_over_reference_p99"] = round(latency["p99_ms"] / ref["e2e_p99_ms"], 3)
    return ref


def _ingest(
    kafka: Any, bootstrap: str, messages: list[bytes], rate: float, partitions: int
) -> dict[str, object]:
    """The broker's CPU for the survey's side alone: the latency phase's paced producer (one
    request per alert, ``linger.ms`` 0, so that no producer linger is in the latency) writing
    to a topic nobody reads, for ``INGEST_S``. A real survey's producer batches; this part of the
    phase's broker CPU is the bench's, not the scorers' (docs/PERFORMANCE.md)."""
    from services.common.kafka import ensure_topics, producer

    topic = f"ingest.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka, bootstrap, [topic], partitions=partitions)
    paced = producer(kafka, bootstrap, **{"linger.ms": 0})
    n = int(rate * INGEST_S)
    meter = CpuMeter(roles())
    start = time.perf_counter()
    for i in range(n):
        time.sleep(max(0.0, start + i / rate - time.perf_counter()))
        paced.produce(topic, messages[i % len(messages)])
        paced.poll(0)
    paced.flush(10)
    del paced
    return meter.stop(n)


def _without_ingest(phase: dict[str, Any], ingest: dict[str, Any]) -> None:
    """The phase's scorer path less the broker CPU the survey's producer costs alone."""
    per_alert = ingest["cpu_ms_per_alert"].get("broker")
    if per_alert is not None and phase.get("scorer_path_ms_per_alert") is not None:
        phase["ingest_broker_ms_per_alert"] = per_alert
        phase["scorer_path_without_ingest_ms_per_alert"] = round(
            phase["scorer_path_ms_per_alert"] - per_alert, 4
        )


def summary(results: dict[str, Any]) -> str:
    """The figures the issue targets, one line each (the JSON has the rest)."""
    lines = []
    backlog, latency, ref = (results.get(k, {}) for k in ("backlog", "latency", "reference"))
    for phase in ("cpu_backlog", "cpu_latency"):
        cpu = results.get(phase)
        if cpu:
            per = ", ".join(f"{r} {v}" for r, v in cpu["cpu_ms_per_alert"].items())
            without = cpu.get("scorer_path_without_ingest_ms_per_alert")
            lines.append(
                f"{phase}: CPU ms/alert {per}; scorer path {cpu['scorer_path_ms_per_alert']}"
                + (f" ({without} without the survey producer's own)" if without else "")
                + f" (load1 {cpu['load1_before']} -> {cpu['load1_after']})"
            )
    if backlog:
        lines.append(f"backlog: {backlog['alerts_per_s']:.0f} alerts/s")
    if latency:
        lines.append(
            f"latency at {latency['rate_per_s']:.0f}/s: p50 {latency['p50_ms']} ms, "
            f"p99 {latency['p99_ms']} ms, max {latency['max_ms']} ms; run queue p50 "
            f"{latency['run_queue']['p50']}, p99 {latency['run_queue']['p99']} "
            f"on {latency['run_queue']['cores']} cores"
        )
    if ref:
        lines.append(
            f"reference: {ref.get('e2e_per_s')} alerts/s, p99 {ref.get('e2e_p99_ms')} ms; "
            f"backlog/reference {ref.get('backlog_over_reference_rate')}, "
            f"p99/reference {ref.get('p99_over_reference_p99')}"
        )
    return "\n".join(lines)


def main(a: argparse.Namespace) -> int:
    results = run(a)
    print(json.dumps(results, indent=1))
    print(summary(results), file=sys.stderr)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(results, indent=1))
    return 0
