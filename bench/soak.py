"""`ahunt bench soak`: the whole stack under a steady stream for a long time (issue 17).

The embedded broker and Redis, the scorer, the feedback API and the retrain service, as
``ahunt up`` starts them. Simulated alerts (each copy of the simulated pool with its own alert
id) arrive at ``--rate`` a second; one simulated day passes every ``--night-s`` seconds of the
stream, so the users' nightly budgets refill and the users (the demo's oracles) label what they
receive all along; the retrain service retrains every ``--retrain-minutes``. Every 10 s the
resident memory of each process is sampled.

The embedded broker keeps every record in memory (Tansu 0.6.0's memory engine has no retention,
and DeleteRecords closes the connection): at 250 alerts/s of ~69 kB simulated ZTF packets it
grows by ~17 MB/s, so its slope is the stream's, not a leak, and a run stops early when the
machine's free memory falls under 3 GiB.

It reports each process's memory slope (MB per hour, least squares, after the first
``--warmup-minutes``) and checks that nothing was lost: every alert produced was consumed and
committed by the scorer with no dead letter, and every label a user posted was acknowledged.
A benchmark, not a test: the figures go to docs/RELIABILITY.md with the command.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_EVERY_S = 10.0
MIN_FREE_BYTES = 3 * 2**30
JD_PER_NIGHT = 1.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--minutes", type=float, default=30.0, help="how long the stream runs")
    p.add_argument("--rate", type=float, default=250.0, help="alerts a second")
    p.add_argument("--retrain-minutes", type=float, default=5.0, help="retrain this often")
    p.add_argument("--night-s", type=float, default=60.0, help="stream seconds per simulated day")
    p.add_argument("--budget", type=int, default=25, help="each user's alerts a night")
    p.add_argument("--pool", type=int, default=1500, help="simulated alerts, replayed in turn")
    p.add_argument("--warmup-minutes", type=float, default=2.0, help="left out of the slopes")
    p.add_argument("--out", type=Path, default=None, help="state, logs and soak.json (a temp dir)")
    p.add_argument("--json", type=Path, default=None, help="also write the result here")


class Pool:
    """Single-record packets made from the simulated night's alerts: copy ``i`` is the pool's
    ``i % n``-th alert with its own id and an observation time that advances one simulated day
    every ``per_night`` alerts. ``truth`` maps every id made so far to its original's row."""

    def __init__(
        self,
        files: list[Path],
        truth: Mapping[str, Mapping[str, str]],
        start_jd: float,
        per_night: float,
    ) -> None:
        import fastavro

        from services.common.replay import messages_from_files

        self.records: list[tuple[Any, dict[str, Any]]] = []
        for message in messages_from_files(files):
            reader = fastavro.reader(io.BytesIO(message))
            schema = fastavro.parse_schema(reader.writer_schema)
            self.records += [(schema, r) for r in reader if isinstance(r, dict)]
        if not self.records:
            raise SystemExit("the simulated night holds no alert")
        self.original = truth
        self.truth: dict[str, Mapping[str, str]] = {}
        self.start_jd, self.per_night = start_jd, per_night
        self.first_id = int(time.time() * 1000) * 1000

    def packet(self, i: int) -> bytes:
        import fastavro

        schema, record = self.records[i % len(self.records)]
        candid = self.first_id + i
        row = self.original.get(str(record["candid"]))
        if row is not None:
            self.truth[str(candid)] = row
        jd = self.start_jd + JD_PER_NIGHT * i / self.per_night
        buf = io.BytesIO()
        candidate = {**record["candidate"], "jd": jd, "candid": candid}
        fastavro.writer(buf, schema, [{**record, "candid": candid, "candidate": candidate}])
        return buf.getvalue()


class Sampler(threading.Thread):
    """Resident memory (MB) of each named process, every ``every_s`` seconds."""

    def __init__(self, pids: Mapping[str, int], every_s: float = SAMPLE_EVERY_S) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        import psutil

        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.every_s = every_s
        self.samples: dict[str, list[tuple[float, float]]] = {n: [] for n in pids}
        self.started = time.monotonic()
        self.done = threading.Event()

    def sample(self) -> None:
        import psutil

        at = time.monotonic() - self.started
        for name, process in self.processes.items():
            try:
                rss = process.memory_info().rss
                for child in process.children(recursive=True):
                    rss += child.memory_info().rss
            except psutil.Error:
                continue
            self.samples[name].append((at, rss / 2**20))

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.every_s)
        self.sample()


def slope_mb_per_hour(samples: list[tuple[float, float]], skip_s: float) -> float | None:
    """Least-squares slope of resident memory over time after ``skip_s``, in MB an hour."""
    kept = [(t, mb) for t, mb in samples if t >= skip_s]
    if len(kept) < 3:
        return None
    t = np.array([k[0] for k in kept]) / 3_600.0
    mb = np.array([k[1] for k in kept])
    return float(np.polyfit(t, mb, 1)[0])


def _server_pids(stack: Any) -> dict[str, int]:
    """The embedded broker's and Redis's processes: children of this process, by name."""
    import psutil

    found: dict[str, int] = {}
    service_pids = {p.pid for p in stack.processes.values()}
    for child in psutil.Process().children():
        if child.pid in service_pids:
            continue
        name = child.name()
        if "tansu" in name:
            found["broker"] = child.pid
        elif "redis" in name:
            found["redis"] = child.pid
    return found


def _metric_sum(url: str, name: str) -> float:
    from services.tools.demo.observe import metric_samples

    return float(sum(s.value for s in metric_samples(url) if s.name == name))


def _labeller(
    oracle: Any, kafka: Any, bootstrap: str, stop: threading.Event, round_s: float
) -> Iterator[int]:
    """Label rounds of at most ``round_s`` (each round rejoins the user's own group, which
    continues where the last one committed) until ``stop``."""
    from services.tools.demo.oracle import drain

    while not stop.is_set():
        got = drain(oracle, kafka, bootstrap, idle_s=min(2.0, round_s), max_s=round_s)
        yield sum(r.labelled for r in got)


def run_soak(
    minutes: float,
    rate: float = 250.0,
    retrain_minutes: float = 5.0,
    night_s: float = 60.0,
    budget: int = 25,
    pool: int = 1500,
    warmup_minutes: float = 2.0,
    out: Path | None = None,
    progress: Any = print,
    sample_s: float = SAMPLE_EVERY_S,
    label_round_s: float = 20.0,
) -> dict[str, Any]:
    import psutil

    from services.common.kafka import Delivery, OutMessage, group_backlog, producer
    from services.common.topics import ALERTS
    from services.scorer.settings import ScorerSettings
    from services.tools.demo import observe
    from services.tools.demo.run import DemoPlan, LiveDemo, Simulation, stack_environment
    from services.tools.demo.users import USERS
    from services.tools.stack import Stack

    tmp = None
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="ahunt-soak-")
        out = Path(tmp.name)
    out.mkdir(parents=True, exist_ok=True)
    plan = DemoPlan(out, nights=1, per_night=pool, budget=budget, pool=pool, retrain_epochs=1)
    progress(f"simulating a pool of {pool} alerts ...")
    sim = Simulation(plan)
    environment = {
        **stack_environment(plan),
        "AHUNT_SCORER_EXPECTED_ALERTS": str(int(rate * night_s)),
        "AHUNT_RETRAIN_INTERVAL_MINUTES": str(retrain_minutes),
        # on the interval only (by default 20 new labels start one too: every ~40 s here)
        "AHUNT_RETRAIN_MIN_NEW_LABELS": "1000000000",
        "AHUNT_RETRAIN_POLL_S": "5",
        "AHUNT_RETRAIN_FINETUNE_EPOCHS": "1",
        "AHUNT_RETRAIN_THREADS": "1",
    }
    result: dict[str, Any] = {"minutes": minutes, "rate": rate, "retrain_minutes": retrain_minutes}
    started = time.monotonic()
    try:
        with Stack(
            state_dir=out / "state",
            services=("scorer", "feedback", "retrain"),
            extra_env=environment,
            log_dir=out / "logs",
        ) as stack:
            demo = LiveDemo(plan, sim, stack, progress)
            for user in USERS:
                demo.sign_up(user)
            demo.bootstrap_v1()
            alerts = Pool(sim.night_files[1], sim.truth, sim.config.start_jd + 1.0, rate * night_s)
            for oracle in demo.oracles.values():
                oracle.truth = alerts.truth
            pids = {name: p.pid for name, p in stack.processes.items()}
            sampler = Sampler({**pids, **_server_pids(stack)}, sample_s)
            sampler.start()
            stop = threading.Event()
            labels = {name: 0 for name in demo.oracles}

            def label(name: str) -> None:
                oracle = demo.oracles[name]
                rounds = _labeller(oracle, demo.kafka, demo.bootstrap_servers, stop, label_round_s)
                for n in rounds:
                    labels[name] += n

            labellers = [
                threading.Thread(target=label, args=(name,), daemon=True) for name in labels
            ]
            for t in labellers:
                t.start()
            delivery = Delivery(producer(demo.kafka, demo.bootstrap_servers))
            total = int(minutes * 60 * rate)
            progress(f"streaming {total} alerts at {rate:.0f}/s for {minutes:g} min ...")
            began = time.monotonic()
            chunk = max(1, int(rate / 5))

            for start in range(0, total, chunk):
                batch = [alerts.packet(i) for i in range(start, min(total, start + chunk))]
                delivery.send([OutMessage(ALERTS, m) for m in batch])
                if stack.failed():
                    raise RuntimeError(f"a service exited: {stack.failed()}")
                if psutil.virtual_memory().available < MIN_FREE_BYTES:
                    # the memory broker keeps every record: stop before the machine runs out
                    progress(f"stopping early at {start + len(batch)} alerts: memory is short")
                    total = start + len(batch)
                    break
                time.sleep(max(0.0, began + (start + len(batch)) / rate - time.monotonic()))
            streamed_s = time.monotonic() - began
            group = ScorerSettings().group_id
            observe.wait_until(
                "the scorer finishing the stream",
                lambda: group_backlog(demo.kafka, demo.bootstrap_servers, group, ALERTS) == 0,
                600,
            )
            caught_up_s = time.monotonic() - began - streamed_s
            stop.set()
            for t in labellers:
                t.join(60)
            sampler.done.set()
            sampler.join(30)
            scorer_url = next(s.ready_url for s in stack.specs if s.name == "scorer")
            consumed = _metric_sum(scorer_url, "ahunt_scorer_alerts_consumed_total")
            dead = _metric_sum(scorer_url, "ahunt_scorer_dead_letters_total")
            retrain_url = next(s.ready_url for s in stack.specs if s.name == "retrain")
            retrains = observe.metric_samples(retrain_url)
            received = {n: len(o.received) for n, o in demo.oracles.items()}
            refused = {
                n: sum(r.true_class is not None and not r.labelled for r in o.received)
                for n, o in demo.oracles.items()
            }
            failed = stack.failed()
            delivery.producer.flush(10)
            del delivery
        skip = warmup_minutes * 60.0
        result.update(
            produced=total,
            streamed_s=round(streamed_s, 1),
            caught_up_s=round(caught_up_s, 1),
            consumed=consumed,
            dead_letters=dead,
            received=received,
            labels=labels,
            labels_refused=refused,
            retrains={
                s.labels.get("outcome", "?"): s.value
                for s in retrains
                if s.name == "ahunt_retrain_runs_total"
            },
            service_failed=failed,
            memory_mb={
                name: {
                    "first": round(s[0][1], 1) if s else None,
                    "last": round(s[-1][1], 1) if s else None,
                    "max": round(max(mb for _, mb in s), 1) if s else None,
                    "slope_mb_per_hour": (
                        None if (v := slope_mb_per_hour(s, skip)) is None else round(v, 1)
                    ),
                    "samples": len(s),
                    "series": [(round(t, 1), round(mb, 1)) for t, mb in s],
                }
                for name, s in sampler.samples.items()
            },
            load_average=[round(x, 2) for x in os.getloadavg()],
            seconds=round(time.monotonic() - started, 1),
        )
        result["lost"] = consumed < total or dead > 0 or any(refused.values()) or failed is not None
        (out / "soak.json").write_text(json.dumps(result, indent=2))
        return result
    finally:
        if tmp is not None:
            tmp.cleanup()


def format_result(result: dict[str, Any]) -> str:
    lines = [
        f"{result['produced']} alerts at {result['rate']:.0f}/s in {result['streamed_s']} s "
        f"(caught up {result['caught_up_s']} s later): consumed {result['consumed']:.0f}, "
        f"dead letters {result['dead_letters']:.0f}, lost: {'YES' if result['lost'] else 'none'}",
        f"users received {result['received']}, labels acknowledged {result['labels']}, "
        f"refused {result['labels_refused']}; retrains {result['retrains']}",
        f"{'process':<10} {'first MB':>9} {'last MB':>8} {'max MB':>7} {'MB/hour':>8}",
    ]
    for name, m in result["memory_mb"].items():
        slope = "-" if m["slope_mb_per_hour"] is None else f"{m['slope_mb_per_hour']:+.1f}"
        lines.append(f"{name:<10} {m['first']!s:>9} {m['last']!s:>8} {m['max']!s:>7} {slope:>8}")
    lines.append(f"load average {result['load_average']}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    result = run_soak(
        args.minutes,
        args.rate,
        args.retrain_minutes,
        args.night_s,
        args.budget,
        args.pool,
        args.warmup_minutes,
        args.out,
    )
    print(format_result(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 1 if result["lost"] else 0
