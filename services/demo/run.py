"""``ahunt demo``: the whole product, live, on one machine, in a few minutes.

1. ``ahunt simulate`` writes N nights of ZTF-format alerts (and a few broken packets a night).
2. The stack starts as in ``ahunt up``: embedded broker and Redis, the scorer and the feedback API
   as child processes.
3. Two users sign up over the API with different tastes: ``alice`` hunts lensed arcs and finds
   satellite streaks boring; ``bob`` tracks satellites and finds cosmic rays boring.
4. Version 1 is bootstrapped from an unlabelled commissioning night (and the real ZTF sample
   alerts when present): one known class, "normal", plus the reserve.
5. Each night: the night's packets are replayed to ``ahunt.alerts`` (the real samples too on
   night 1); the scorer routes alerts to each user's topic within their budget; each simulated
   user (``ahunt oracle``) reads their topic and labels what they got over REST; the retrain
   service's code fine-tunes on every durable label, gates and promotes; the scorer hot-swaps.
6. A table per night, a discovery curve per user (AHUNT beside an isolation forest on pixels with
   the same budget) and a gallery of each user's top alerts are written to ``--out``.

Everything is real: the broker, Redis, the HTTP API and the model files. Only the users are
simulated, and they only ever see what arrives on their Kafka topic.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import signal
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from services.common import store
from services.common.alerts import Alert, decode_message
from services.common.kafka import (
    DLQ_TOPIC,
    Delivery,
    OutMessage,
    consumer,
    ensure_topics,
    group_backlog,
    producer,
)
from services.common.replay import messages_from_files
from services.common.settings import KafkaSettings
from services.common.users import user_topic
from services.demo.oracle import Oracle, drain, read_truth
from services.stack import Stack

log = logging.getLogger("ahunt.demo")

REPO = Path(__file__).resolve().parents[2]
INPUT_TOPIC = "ahunt.alerts"
SCORER_GROUP = "ahunt-scorer"


@dataclass(frozen=True)
class DemoUser:
    name: str
    interesting: tuple[str, ...]
    boring: tuple[str, ...]


USERS = (
    DemoUser("alice", ("lensed_arc",), ("satellite",)),
    DemoUser("bob", ("satellite",), ("cosmic_ray",)),
)


@dataclass
class NightRow:
    night: int
    alerts: int
    scored: int
    model_version: str  # the version live while the night was scored
    delivered: dict[str, int] = field(default_factory=dict)
    interesting_share: dict[str, float] = field(default_factory=dict)
    # the same share among the deliveries the model chose as top picks (not exploration)
    top_share: dict[str, float] = field(default_factory=dict)
    boring_delivered: dict[str, int] = field(default_factory=dict)
    baseline_share: dict[str, float] = field(default_factory=dict)
    retrain: str = ""


@dataclass
class DemoResult:
    rows: list[NightRow]
    stream_share: dict[str, float]  # share of each user's interesting class in the stream
    versions_published: list[str]
    versions_seen: dict[str, list[str]]
    dead_letters: list[dict[str, Any]]
    bad_packets: int
    deliveries: dict[str, list[dict[str, Any]]]  # per user: what arrived, its class and reason
    seconds: float
    out: Path

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["out"] = str(self.out)
        return data


def default_samples() -> Path | None:
    """The real ZTF sample alerts: shipped with the tests, else the workspace's shared data."""
    for candidate in (REPO / "tests" / "data" / "alerts", REPO.parent / "shared/data/alerts"):
        if any(candidate.glob("ztf/*.avro")):
            return candidate
    return None


def _api(method: str, url: str, token: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def _samples(url: str) -> list[Any]:
    """Every sample of a service's ``/metrics``, through prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def _scored(url: str) -> float:
    return sum(s.value for s in _samples(url) if s.name == "ahunt_scorer_alerts_scored_total")


def _live_versions(url: str) -> set[str]:
    """Versions the scorer reports as live (``ahunt_scorer_model_info`` == 1)."""
    return {
        s.labels["version"]
        for s in _samples(url)
        if s.name == "ahunt_scorer_model_info" and s.value == 1.0
    }


def _wait(what: str, check: Callable[[], bool], timeout: float, every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise TimeoutError(f"demo: {what} did not happen within {timeout:.0f} s")


def baseline_shares(
    night_alerts: Sequence[Alert],
    classes: Sequence[str],
    budget: int,
    users: Sequence[DemoUser],
    seed: int,
) -> dict[str, list[str]]:
    """The isolation-forest-on-pixels baseline: per night, the ``budget`` most isolated alerts
    of the night's stamps (2x2-binned, preprocessed as the scorer does). The same picks go to
    every user (it has no notion of interest); returns the classes it would deliver."""
    from sklearn.ensemble import IsolationForest

    from models.preprocess import SURVEY_PREPROCESSING, ZTF_SPEC
    from services.retrain.bootstrap import prepare

    x = prepare(night_alerts, ZTF_SPEC, SURVEY_PREPROCESSING)
    binned = x[:, :, :62, :62].reshape(len(x), 3, 31, 2, 31, 2).mean(axis=(3, 5))
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(binned.reshape(len(x), -1))
    isolation = -forest.score_samples(binned.reshape(len(x), -1))
    top = np.argsort(-isolation, kind="stable")[:budget]
    picked = [classes[i] for i in top]
    return {u.name: picked for u in users}


def run_demo(
    out: Path,
    nights: int = 5,
    per_night: int = 1500,
    budget: int = 25,
    seed: int = 0,
    pool: int = 1500,
    bad_per_night: int = 2,
    samples: Path | None = None,
    retrain_epochs: int = 3,
    progress: Callable[[str], None] = print,
    on_done: Callable[[DemoResult, str, dict[str, str], Callable[[], str | None]], None]
    | None = None,
) -> DemoResult:
    """``on_done(result, api_url, tokens, failed)`` runs at the end with the stack still up
    (``--keep``: a person explores the desk as the simulated users)."""
    from models.preprocess import SURVEY_PREPROCESSING, ZTF_SPEC
    from services.common.registry import Registry
    from services.feedback.tokens import add_user
    from services.retrain.bootstrap import bootstrap, pool_examples
    from services.retrain.loop import retrain_once
    from services.retrain.settings import RetrainSettings
    from services.simulator import SimulationConfig, simulate_night, write_simulation

    started = time.perf_counter()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    sim = out / "sim"
    progress(f"simulating {nights} nights x {per_night} alerts (+{bad_per_night} broken a night)")
    # The simulated survey starts tonight, after every real sample alert: budgets are paced on
    # the alerts' own clock, which must not run backwards between the real and simulated data.
    # A small night spread over ~6 hours of exposures (2 alerts each, every 45 s), as a real
    # night is: budgets are paced over the night on the alerts' clock.
    config = SimulationConfig(
        start_jd=float(np.floor(time.time() / 86_400.0 + 2440587.5)) + 0.5,
        alerts_per_exposure=max(1, per_night // 450),
    )
    summary = write_simulation(
        sim, nights, per_night, seed, bad_per_night=bad_per_night, config=config
    )
    truth = read_truth(sim / "truth.csv")
    night_files = {n: sorted((sim / f"night-{n:02d}").glob("*.avro")) for n in range(1, nights + 1)}
    bad_files = {
        n: sorted((sim / f"night-{n:02d}" / "bad").glob("*.avro")) for n in range(1, nights + 1)
    }
    total = sum(summary.classes.values())
    stream_share = {
        u.name: sum(summary.classes.get(c, 0) for c in u.interesting) / total for u in USERS
    }

    kafka = KafkaSettings(session_timeout_ms=3000, heartbeat_interval_ms=500)
    env = {
        "KAFKA_SESSION_TIMEOUT_MS": "3000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "AHUNT_SCORER_USERS_REFRESH_S": "1",
        "AHUNT_SCORER_MODELS_REFRESH_S": "1",
        "AHUNT_SCORER_SEED": str(seed),
        # The operator's prior for the stream's volume: the survey sends about this many a night.
        "AHUNT_SCORER_EXPECTED_ALERTS": str(per_night),
        "AHUNT_FEEDBACK_RATE_LIMIT_PER_S": "10000",
        "AHUNT_FEEDBACK_RATE_LIMIT_BURST": "10000",
    }
    progress("starting the stack (embedded Kafka + Redis, scorer, feedback API) ...")
    with Stack(
        state_dir=out / "state",
        services=("scorer", "feedback"),
        extra_env=env,
        log_dir=out / "logs",
    ) as stack:
        assert stack.kafka and stack.redis_url
        bootstrap_servers: str = stack.kafka
        feedback = next(s for s in stack.specs if s.name == "feedback").ready_url.rsplit("/", 1)[0]
        scorer_metrics = next(s for s in stack.specs if s.name == "scorer").ready_url
        progress(f"  Kafka {stack.kafka}  Redis {stack.redis_url}  API {feedback}/docs")
        client = store.connect(stack.redis_url)
        ensure_topics(
            kafka, stack.kafka, [INPUT_TOPIC, DLQ_TOPIC, *(user_topic(u.name) for u in USERS)]
        )

        oracles: dict[str, Oracle] = {}
        for u in USERS:
            token = add_user(client, u.name)
            _api(
                "PUT",
                f"{feedback}/v1/me/interest",
                token,
                {
                    "weights": {c: 1.0 for c in u.interesting},
                    "budget": {"alerts": budget, "period": "night"},
                },
            )
            # Each user hunts one kind: every other kind they are shown is "not interesting".
            oracles[u.name] = Oracle(
                u.name,
                token,
                feedback,
                truth,
                frozenset(u.interesting),
                frozenset(u.boring),
                others_boring=True,
            )
            progress(
                f"  user {u.name}: likes {', '.join(u.interesting)}, nothing else (striking but "
                f"boring: {', '.join(u.boring)}); {budget} alerts a night on {user_topic(u.name)}"
            )

        # -- version 1 -------------------------------------------------------------------------
        settings = RetrainSettings(
            work_dir=out / "state" / "retrain",
            registry_cache_dir=out / "state" / "retrain-cache",
            metrics_port=0,
            seed=seed,
            threads=1,
            min_epoch_samples=1024,
            finetune_epochs=retrain_epochs,
            bootstrap_epochs=retrain_epochs,
        )
        registry = Registry(client, settings.registry_cache_dir)
        # A commissioning night a month before the stream: its own dates, hence its own ids.
        early = config.model_copy(update={"start_jd": config.start_jd - 30})
        commissioning = simulate_night(early, 1, pool, np.random.default_rng([seed, 0]))
        pool_alerts = [
            r for a in commissioning for r in decode_message(a.packet) if isinstance(r, Alert)
        ]
        real = list(
            messages_from_files(sorted((samples or Path("/nonexistent")).glob("ztf*/*.avro")))
        )
        pool_alerts += [r for m in real for r in decode_message(m) if isinstance(r, Alert)]
        progress(
            f"bootstrapping v1 on {len(pool_alerts)} unlabelled alerts ({len(real)} real ZTF) ..."
        )
        outcome = bootstrap(
            settings,
            client,
            registry,
            "ztf",
            pool_examples(pool_alerts, ZTF_SPEC, SURVEY_PREPROCESSING),
            ZTF_SPEC,
        )
        if not outcome.promoted or outcome.version is None:
            raise RuntimeError(f"bootstrap failed: {outcome.outcome}: {outcome.reason}")
        published = [outcome.version]
        _wait(
            "the scorer loading v1",
            lambda: outcome.version in _live_versions(scorer_metrics),
            120,
        )
        progress(f"  {outcome.version} live")

        delivery = Delivery(producer(kafka, stack.kafka, **{"message.max.bytes": 10_000_000}))
        rows: list[NightRow] = []
        live = outcome.version
        bad_sent = 0
        for night in range(1, nights + 1):
            t_night = time.perf_counter()
            messages = []
            if night == 1 and real:
                messages += real
            simulated = list(messages_from_files(night_files[night]))
            messages += simulated
            bad = list(messages_from_files(bad_files[night]))
            bad_sent += len(bad)
            messages += bad
            scored_before = _scored(scorer_metrics)
            for start in range(0, len(messages), 500):
                delivery.send([OutMessage(INPUT_TOPIC, m) for m in messages[start : start + 500]])
            _wait(
                f"the scorer finishing night {night}",
                lambda: group_backlog(kafka, bootstrap_servers, SCORER_GROUP, INPUT_TOPIC) == 0,
                600,
            )
            scored = _scored(scorer_metrics) - scored_before
            row = NightRow(night, len(night_files[night]), int(scored), live)
            baseline_alerts = [
                r for m in simulated for r in decode_message(m) if isinstance(r, Alert)
            ]
            base = baseline_shares(
                baseline_alerts,
                [truth[a.alert_id]["class"] for a in baseline_alerts],
                budget,
                USERS,
                seed,
            )
            for u in USERS:
                got = drain(oracles[u.name], kafka, stack.kafka, idle_s=2.0)
                tonight = [r for r in got if r.night == night]
                row.delivered[u.name] = len(tonight)
                row.interesting_share[u.name] = (
                    sum(r.true_class in u.interesting for r in tonight) / len(tonight)
                    if tonight
                    else 0.0
                )
                top = [r for r in tonight if r.reason == "top"]
                row.top_share[u.name] = (
                    sum(r.true_class in u.interesting for r in top) / len(top) if top else 0.0
                )
                row.boring_delivered[u.name] = sum(r.true_class in u.boring for r in tonight)
                picks = base[u.name]
                row.baseline_share[u.name] = sum(c in u.interesting for c in picks) / max(
                    1, len(picks)
                )
            # -- retrain on every durable label, gate, promote, hot swap --------------------------
            result = retrain_once(settings, client, registry, "ztf")
            if result.version:
                published.append(result.version)
            took = result.durations.get("total", 0.0)
            row.retrain = f"{result.version or '-'} {result.outcome} in {took:.0f} s"
            if result.outcome != "promoted":
                row.retrain += f" ({result.reason[:60]})"
            if result.promoted and result.version:
                version = result.version
                _wait(
                    f"the scorer swapping to {version}",
                    lambda v=version: v in _live_versions(scorer_metrics),  # type: ignore[misc]
                    120,
                )
                live = version
            rows.append(row)
            progress(format_row(row, night == 1) + f"   ({time.perf_counter() - t_night:.0f} s)")

        delivery.producer.flush(10)
        del delivery  # the producer goes before the broker does (no reconnect noise at exit)
        dead = _read_dlq(kafka, stack.kafka)
        versions_seen = {
            name: sorted({r.model_version for r in o.received}) for name, o in oracles.items()
        }
        result_obj = DemoResult(
            rows=rows,
            stream_share=stream_share,
            versions_published=published,
            versions_seen=versions_seen,
            dead_letters=dead,
            bad_packets=bad_sent,
            deliveries={name: [asdict(r) for r in o.received] for name, o in oracles.items()},
            seconds=0.0,
            out=out,
        )
        _figures(out, oracles, rows, client)
        if on_done is not None:
            result_obj.seconds = time.perf_counter() - started
            (out / "demo.json").write_text(json.dumps(result_obj.to_json(), indent=2))
            on_done(result_obj, feedback, {n: o.token for n, o in oracles.items()}, stack.failed)
    result_obj.seconds = time.perf_counter() - started
    (out / "demo.json").write_text(json.dumps(result_obj.to_json(), indent=2))
    return result_obj


def _read_dlq(kafka: KafkaSettings, bootstrap: str) -> list[dict[str, Any]]:
    c = consumer(kafka, bootstrap, f"demo-dlq-{time.time_ns()}")
    c.subscribe([DLQ_TOPIC])
    out: list[dict[str, Any]] = []
    quiet = time.monotonic()
    try:
        while time.monotonic() - quiet < 3.0:
            for m in c.consume(500, 0.5):
                if not m.error():
                    out.append(json.loads(m.value() or b"{}"))
                    quiet = time.monotonic()
    finally:
        c.close()
    return [{k: d.get(k) for k in ("reason", "alert_id", "source", "error_class")} for d in out]


def format_row(row: NightRow, header: bool) -> str:
    names = [u.name for u in USERS]
    lines = []
    if header:
        cols = "".join(f" | {n}: got  liked  (top)  boring  (iforest)" for n in names)
        lines.append(f"night  alerts  scored  model    {cols} | retrain")
    cells = "".join(
        f" |    {row.delivered[n]:>5}  {row.interesting_share[n]:>5.0%}  ({row.top_share[n]:>4.0%})"
        f"  {row.boring_delivered[n]:>6}  ({row.baseline_share[n]:>4.0%}) "
        for n in names
    )
    lines.append(
        f"{row.night:>5}  {row.alerts:>6}  {row.scored:>6}  {row.model_version:<8}{cells}"
        f" | {row.retrain}"
    )
    return "\n".join(lines)


def _figures(out: Path, oracles: dict[str, Oracle], rows: list[NightRow], client: Any) -> None:
    """Discovery curves and galleries (matplotlib from the bench extra; skipped without it)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib not installed: no figures")
        return
    from services.common.cutouts import decode_stamp

    for u in USERS:
        received = [r for r in oracles[u.name].received if r.night is not None]
        hits = np.cumsum([r.true_class in u.interesting for r in received])
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(np.arange(1, len(hits) + 1), hits, label="AHUNT (this run)", lw=2)
        base_hits: list[float] = []
        acc = 0.0
        for row in rows:
            per = row.delivered[u.name] or 0
            for _ in range(per):
                acc += row.baseline_share[u.name]
                base_hits.append(acc)
        ax.plot(
            np.arange(1, len(base_hits) + 1), base_hits, label="isolation forest on pixels", ls="--"
        )
        ax.set_xlabel("alerts delivered")
        ax.set_ylabel(f"interesting found ({', '.join(u.interesting)})")
        ax.set_title(f"{u.name}: cumulative discoveries")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / f"discovery-{u.name}.png", dpi=110)
        plt.close(fig)

        top = sorted(received, key=lambda r: -r.score)[:8]
        if not top:
            continue
        fig, axes = plt.subplots(len(top), 3, figsize=(4.5, 1.6 * len(top)), squeeze=False)
        for i, r in enumerate(top):
            cached = client.hmget(
                store.alert_key(r.alert_id),
                ["cutout_science", "cutout_template", "cutout_difference"],
            )
            for j, raw in enumerate(cached):
                ax = axes[i][j]
                ax.set_axis_off()
                if raw:
                    image = decode_stamp(raw)
                    lo, hi = np.nanpercentile(image, [1, 99.5])
                    ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, origin="lower")
            axes[i][0].set_title(f"{r.true_class} {r.score:.2f}", fontsize=7, loc="left")
        fig.suptitle(f"{u.name}: top alerts", fontsize=9)
        fig.tight_layout()
        fig.savefig(out / f"gallery-{u.name}.png", dpi=100)
        plt.close(fig)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nights", type=int, default=5)
    p.add_argument("--alerts-per-night", type=int, default=1500)
    p.add_argument("--budget", type=int, default=25, help="alerts per user per night")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("demo-output"))
    p.add_argument("--samples", type=Path, default=None, help="real ZTF alerts to replay too")
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the stack up afterwards: prints the desk's URL and each user's token",
    )


def main(args: argparse.Namespace) -> int:
    from services.demo.keep import keep_open

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    # SIGTERM unwinds like Ctrl-C, so the stack's children and servers are stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    dead: list[str] = []

    def keep(result: DemoResult, api: str, tokens: dict[str, str], failed: Any) -> None:
        _summary(result)
        try:
            if (gone := keep_open(api, tokens, failed)) is not None:
                dead.append(gone)
        except KeyboardInterrupt:  # Ctrl-C: the stack stops on the way out
            pass

    result = run_demo(
        args.out,
        nights=args.nights,
        per_night=args.alerts_per_night,
        budget=args.budget,
        seed=args.seed,
        samples=args.samples or default_samples(),
        progress=lambda line: print(line, flush=True),
        on_done=keep if args.keep else None,
    )
    if not args.keep:
        _summary(result)
    return 1 if dead else 0


def _summary(result: DemoResult) -> None:
    last = result.rows[-1]
    print(f"\nfinished in {result.seconds:.0f} s; outputs in {result.out}/")
    for u in USERS:
        print(
            f"  {u.name}: last night {last.interesting_share[u.name]:.0%} of deliveries were "
            f"{'/'.join(u.interesting)} (stream {result.stream_share[u.name]:.1%}, "
            f"isolation forest {last.baseline_share[u.name]:.0%}); "
            f"{last.boring_delivered[u.name]} {'/'.join(u.boring)} delivered"
        )
    print(f"  dead letters: {len(result.dead_letters)} (broken packets sent: {result.bad_packets})")


COMMANDS = {
    "demo": ("the whole product live: simulate, score, label, retrain", add_arguments, main)
}
