"""The demo's steps (the package docstring lists them): simulate, start the stack, sign the users
up, bootstrap version 1, then night after night replay, score, label and retrain."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from services.common import store
from services.common.alerts import Alert, decode_message
from services.common.kafka import Delivery, OutMessage, ensure_topics, group_backlog, producer
from services.common.redis_acl import redacted
from services.common.replay import messages_from_files
from services.common.settings import KafkaSettings
from services.common.topics import ALERTS, DEAD_LETTERS, user_topic
from services.scorer.settings import ScorerSettings
from services.tools.demo import observe
from services.tools.demo.baseline import baseline_shares
from services.tools.demo.oracle import Oracle, Received, drain, read_truth
from services.tools.demo.realsky import RealStream
from services.tools.demo.report import DemoResult, NightRow, format_row, write_figures
from services.tools.demo.users import USERS, DemoUser
from services.tools.stack import Stack

REPO = Path(__file__).resolve().parents[3]
SURVEY = "ztf"
# Real packets mixed into the simulated first night: a few hundred at most, so that an archive
# of thousands beside the samples cannot drown the simulated classes the users hunt.
MAX_SAMPLES = 200


def default_samples() -> Path | None:
    """The real ZTF sample alerts: shipped with the tests, else the workspace's shared data."""
    for candidate in (REPO / "tests" / "data" / "alerts", REPO.parent / "shared/data/alerts"):
        if candidate.is_dir() and any(candidate.rglob("*.avro")):
            return candidate
    return None


def sample_messages(samples: Path | None, limit: int = MAX_SAMPLES) -> list[bytes]:
    """Up to ``limit`` real ZTF alerts under ``samples`` (any folder, any file name; what does
    not decode as ZTF is left out), spread evenly over the files in path order."""
    if samples is None:
        return []
    paths = sorted(p for p in samples.rglob("*.avro") if p.is_file())
    found = [
        m
        for m in messages_from_files(paths)
        if any(isinstance(r, Alert) and r.survey == SURVEY for r in decode_message(m))
    ]
    if len(found) <= limit:
        return found
    return [found[int(i)] for i in np.linspace(0, len(found) - 1, limit).round()]


class Stream(Protocol):
    """What a night-by-night source of alerts gives the live demo (``Simulation``, the simulated
    survey; ``RealStream``, real packets and a labels file)."""

    truth: dict[str, dict[str, str]]
    stream_share: dict[str, float]

    @property
    def users(self) -> tuple[DemoUser, ...]: ...
    @property
    def origin(self) -> str: ...  # where the users' answers come from

    def bootstrap_alerts(self) -> list[Alert]: ...
    def night_messages(self, night: int) -> tuple[list[bytes], int, int]: ...
    def night_alerts(self, night: int) -> list[Alert]: ...


@dataclass(frozen=True)
class DemoPlan:
    """What to run: the size of the survey, the users' budget, the seed, the outputs' folder."""

    out: Path
    nights: int = 5
    per_night: int = 1500
    budget: int = 25
    seed: int = 0
    pool: int = 1500  # unlabelled commissioning alerts for version 1
    bad_per_night: int = 2
    samples: Path | None = None  # real ZTF alerts replayed on night 1 and bootstrapped on
    retrain_epochs: int = 3
    # The real-sky demo (``--alerts DIR --labels FILE``): real packets instead of the simulator.
    alerts: Path | None = None
    labels: Path | None = None
    bootstrap_share: float = 0.3  # of the real alerts, in time order, bootstrapped on unlabelled


class Simulation:
    """Step 1: the simulated survey on disk (``ahunt simulate``) and its truth."""

    users = USERS
    origin = "the simulator's truth (truth.csv)"

    def __init__(self, plan: DemoPlan, real: Sequence[bytes] = ()) -> None:
        from services.tools.simulator import SimulationConfig, write_simulation

        self.plan, sim, self.real = plan, plan.out / "sim", list(real)
        # The simulated survey starts tonight, after every real sample alert: budgets are paced
        # on the alerts' own clock, which must not run backwards between the real and simulated
        # data. A small night spread over ~6 hours of exposures (2 alerts each, every 45 s), as
        # a real night is: budgets are paced over the night on the alerts' clock.
        self.config = SimulationConfig(
            start_jd=float(np.floor(time.time() / 86_400.0 + 2440587.5)) + 0.5,
            alerts_per_exposure=max(1, plan.per_night // 450),
        )
        summary = write_simulation(
            sim,
            plan.nights,
            plan.per_night,
            plan.seed,
            bad_per_night=plan.bad_per_night,
            config=self.config,
        )
        self.truth = read_truth(sim / "truth.csv")
        nights = range(1, plan.nights + 1)
        self.night_files = {n: sorted((sim / f"night-{n:02d}").glob("*.avro")) for n in nights}
        self.bad_files = {
            n: sorted((sim / f"night-{n:02d}" / "bad").glob("*.avro")) for n in nights
        }
        total = sum(summary.classes.values())
        self.stream_share = {
            u.name: sum(summary.classes.get(c, 0) for c in u.interesting) / total for u in USERS
        }

    def bootstrap_alerts(self) -> list[Alert]:
        """Unlabelled alerts of a night a month before the stream (its own dates, so its own
        ids) and the real samples: what version 1 is bootstrapped on."""
        from services.tools.simulator import simulate_night

        plan = self.plan
        early = self.config.model_copy(update={"start_jd": self.config.start_jd - 30})
        night = simulate_night(early, 1, plan.pool, np.random.default_rng([plan.seed, 0]))
        packets = [*(a.packet for a in night), *self.real]
        return [r for m in packets for r in decode_message(m) if isinstance(r, Alert)]

    def night_messages(self, night: int) -> tuple[list[bytes], int, int]:
        """The night's messages (the real samples too on night 1, broken packets last), its
        simulated alerts and broken packets."""
        simulated = list(messages_from_files(self.night_files[night]))
        bad = list(messages_from_files(self.bad_files[night]))
        return [*(self.real if night == 1 else []), *simulated, *bad], len(simulated), len(bad)

    def night_alerts(self, night: int) -> list[Alert]:
        """The night's simulated alerts (the ones with a truth)."""
        simulated = messages_from_files(self.night_files[night])
        return [r for m in simulated for r in decode_message(m) if isinstance(r, Alert)]


def stack_environment(plan: DemoPlan) -> dict[str, str]:
    """Step 2's settings for the children: fast group joins and refreshes, a seeded scorer."""
    return {
        "KAFKA_SESSION_TIMEOUT_MS": "3000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "AHUNT_SCORER_USERS_REFRESH_S": "1",
        "AHUNT_SCORER_MODELS_REFRESH_S": "1",
        "AHUNT_SCORER_SEED": str(plan.seed),
        # The operator's prior for the stream's volume: the survey sends about this many a night.
        "AHUNT_SCORER_EXPECTED_ALERTS": str(plan.per_night),
        "AHUNT_FEEDBACK_RATE_LIMIT_PER_S": "10000",
        "AHUNT_FEEDBACK_RATE_LIMIT_BURST": "10000",
    }


class LiveDemo:
    """Steps 3 to 6 against the running stack."""

    def __init__(
        self, plan: DemoPlan, sim: Stream, stack: Stack, progress: Callable[[str], None]
    ) -> None:
        from services.common.registry import Registry
        from services.retrain.settings import RetrainSettings

        assert stack.kafka and stack.redis_url
        self.plan, self.sim, self.progress = plan, sim, progress
        self.users = sim.users
        self.bootstrap_servers: str = stack.kafka
        logs = plan.out / "logs"
        self.stack_failed = lambda: f"{d} (its log is in {logs})" if (d := stack.failed()) else None
        self.kafka = KafkaSettings(session_timeout_ms=3000, heartbeat_interval_ms=500)
        specs = {s.name: s for s in stack.specs}
        self.api = specs["feedback"].ready_url.rsplit("/", 1)[0]
        self.scorer_metrics = specs["scorer"].ready_url
        self.client = store.connect(stack.redis_url)
        self.settings = RetrainSettings(
            work_dir=plan.out / "state" / "retrain",
            registry_cache_dir=plan.out / "state" / "retrain-cache",
            metrics_port=0,
            seed=plan.seed,
            threads=1,
            min_epoch_samples=1024,
            finetune_epochs=plan.retrain_epochs,
            bootstrap_epochs=plan.retrain_epochs,
        )
        self.registry = Registry(self.client, self.settings.registry_cache_dir, stack.model_keys)
        self.oracles: dict[str, Oracle] = {}
        self.published: list[str] = []
        self.live = ""
        self.bad_sent = 0
        redis = redacted(stack.redis_url)
        progress(f"  Kafka {stack.kafka}  Redis {redis}  API {self.api}/docs")
        topics = [ALERTS, DEAD_LETTERS, *(user_topic(u.name) for u in self.users)]
        ensure_topics(self.kafka, self.bootstrap_servers, topics)

    def sign_up(self, user: DemoUser) -> None:
        """Step 3: a user, their interest and budget over the API, and the oracle playing them.
        Each hunts one kind; every other kind they are shown is "not interesting" to the
        simulator's users, only the one they dismiss to the real sky's."""
        from services.feedback.tokens import add_user

        token = add_user(self.client, user.name)
        interest = {
            "weights": {c: 1.0 for c in user.interesting},
            "budget": {"alerts": self.plan.budget, "period": "night"},
        }
        observe.api("PUT", f"{self.api}/v1/me/interest", token, interest)
        self.oracles[user.name] = Oracle(
            user.name,
            token,
            self.api,
            self.sim.truth,
            frozenset(user.interesting),
            frozenset(user.boring),
            others_boring=user.others_boring,
        )
        boring = f" (striking but boring: {', '.join(user.boring)})" if user.boring else ""
        others = "nothing else" if user.others_boring else "no opinion on the rest"
        self.progress(
            f"  user {user.name}: likes {', '.join(user.interesting)}, {others}{boring}; "
            f"{self.plan.budget} alerts a night on {user_topic(user.name)}"
        )

    def bootstrap_v1(self) -> None:
        """Step 4: version 1 from the stream's bootstrap alerts, unlabelled."""
        from models.preprocess import SURVEY_PREPROCESSING, ZTF_SPEC
        from services.retrain.bootstrap import bootstrap, pool_examples

        alerts = self.sim.bootstrap_alerts()
        self.progress(f"bootstrapping v1 on {len(alerts)} unlabelled alerts ...")
        examples = pool_examples(alerts, ZTF_SPEC, SURVEY_PREPROCESSING)
        outcome = bootstrap(self.settings, self.client, self.registry, SURVEY, examples, ZTF_SPEC)
        if not outcome.promoted or outcome.version is None:
            raise RuntimeError(f"bootstrap failed: {outcome.outcome}: {outcome.reason}")
        self._wait_live(outcome.version, "the scorer loading v1")
        self.published.append(outcome.version)
        self.progress(f"  {outcome.version} live")

    def _wait_live(self, version: str, what: str) -> None:
        check = lambda: version in observe.live_versions(self.scorer_metrics)  # noqa: E731
        observe.wait_until(what, check, 120, failed=self.stack_failed)
        self.live = version

    def night(self, night: int, delivery: Delivery) -> NightRow:
        """Step 5 for one night: replay, wait for the scorer, let the users label, retrain."""
        messages, alerts, bad = self.sim.night_messages(night)
        self.bad_sent += bad
        scored_before = observe.scored(self.scorer_metrics)
        for start in range(0, len(messages), 500):
            delivery.send([OutMessage(ALERTS, m) for m in messages[start : start + 500]])
        group = ScorerSettings().group_id  # as the scorer child reads it
        observe.wait_until(
            f"the scorer finishing night {night}",
            lambda: group_backlog(self.kafka, self.bootstrap_servers, group, ALERTS) == 0,
            600,
            failed=self.stack_failed,
        )
        scored = observe.scored(self.scorer_metrics) - scored_before
        row = NightRow(night, alerts, int(scored), self.live)
        self._label(row, self.sim.night_alerts(night))
        row.retrain = self._retrain()
        return row

    def _label(self, row: NightRow, tonight_alerts: list[Alert]) -> None:
        """Each user labels what reached them tonight; the row gets their shares beside the
        isolation forest's (on tonight's alerts that have a truth, with the same budget)."""
        known = [a for a in tonight_alerts if self.sim.truth.get(a.alert_id, {}).get("class")]
        classes = [self.sim.truth[a.alert_id]["class"] for a in known]
        base = baseline_shares(known, classes, self.plan.budget, self.users, self.plan.seed)
        for u in self.users:
            got = drain(self.oracles[u.name], self.kafka, self.bootstrap_servers, idle_s=2.0)
            tonight = [r for r in got if r.night == row.night]
            top = [r for r in tonight if r.reason == "top"]
            row.delivered[u.name] = len(tonight)
            row.interesting_share[u.name] = _share(tonight, u)
            row.top_share[u.name] = _share(top, u)
            row.boring_delivered[u.name] = sum(r.true_class in u.boring for r in tonight)
            picks = base[u.name]
            row.baseline_share[u.name] = sum(c in u.interesting for c in picks) / max(1, len(picks))
            row.stream_share[u.name] = sum(c in u.interesting for c in classes) / max(
                1, len(classes)
            )

    def _retrain(self) -> str:
        """Retrain on every durable label, gate, promote; wait for the hot swap."""
        from services.retrain.app import retrain_once

        result = retrain_once(self.settings, self.client, self.registry, SURVEY)
        if result.version:
            self.published.append(result.version)
        took = result.durations.get("total", 0.0)
        summary = f"{result.version or '-'} {result.outcome} in {took:.0f} s"
        if result.outcome != "promoted":
            summary += f" ({result.reason[:60]}; logs/retrain.log)"
        if result.promoted and result.version:
            self._wait_live(result.version, f"the scorer swapping to {result.version}")
        return summary

    def result(self, rows: list[NightRow]) -> DemoResult:
        """Step 6's data: the table, every delivery, the dead letters."""
        oracles = self.oracles
        return DemoResult(
            rows=rows,
            stream_share=self.sim.stream_share,
            versions_published=self.published,
            versions_seen={
                n: sorted({r.model_version for r in o.received}) for n, o in oracles.items()
            },
            dead_letters=observe.read_dead_letters(self.kafka, self.bootstrap_servers),
            bad_packets=self.bad_sent,
            deliveries={name: [asdict(r) for r in o.received] for name, o in oracles.items()},
            seconds=0.0,
            out=self.plan.out,
            users=list(self.users),
            labels_origin=self.sim.origin,
        )


def _share(received: list[Received], user: DemoUser) -> float:
    """The share of ``received`` in the classes ``user`` hunts (0 when nothing arrived)."""
    if not received:
        return 0.0
    return sum(r.true_class in user.interesting for r in received) / len(received)


@contextlib.contextmanager
def _in_process_logs(path: Path) -> Iterator[None]:
    """The retrain runs inside the demo's process: its log lines (a rejected candidate's full
    reason, say) go to ``path`` beside the services' logs, not between the table's rows, which
    already say each retrain's outcome."""
    retrain = logging.getLogger("ahunt.retrain")
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    level, propagate = retrain.level, retrain.propagate
    retrain.addHandler(handler)
    retrain.setLevel(logging.INFO)
    retrain.propagate = False
    try:
        yield
    finally:
        retrain.removeHandler(handler)
        retrain.setLevel(level)
        retrain.propagate = propagate
        handler.close()


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
    alerts: Path | None = None,
    labels: Path | None = None,
    bootstrap_share: float = 0.3,
) -> DemoResult:
    """Run the demo into ``out`` (replaced); returns what ``demo.json`` holds. With ``alerts``
    and ``labels``, on those real packets (``realsky``) instead of the simulator.

    ``on_done(result, api_url, tokens, failed)`` runs at the end with the stack still up
    (``--keep``: a person explores the desk as the simulated users)."""
    plan = DemoPlan(
        out,
        nights,
        per_night,
        budget,
        seed,
        pool,
        bad_per_night,
        samples,
        retrain_epochs,
        alerts,
        labels,
        bootstrap_share,
    )
    started = time.perf_counter()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    sim: Stream
    if alerts is not None:
        if labels is None:
            raise ValueError("the real-sky demo needs a labels file (--labels)")
        progress(f"reading real alert packets under {alerts} ...")
        real_sky = RealStream(alerts, labels, nights, bootstrap_share)
        plan = replace(plan, per_night=real_sky.per_night())
        progress(real_sky.describe())
        sim = real_sky
    else:
        real = sample_messages(samples)
        progress(
            f"simulating {nights} nights x {per_night} alerts (+{bad_per_night} broken a night; "
            f"+{len(real)} real ZTF alerts on night 1, bootstrapped on too)"
        )
        sim = Simulation(plan, real)
    progress(f"the users answer from {sim.origin}")
    progress("starting the stack (embedded Kafka + Redis, scorer, feedback API) ...")
    environment = stack_environment(plan)
    with (
        Stack(
            state_dir=out / "state",
            services=("scorer", "feedback"),
            extra_env=environment,
            log_dir=out / "logs",
        ) as stack,
        _in_process_logs(out / "logs" / "retrain.log"),
    ):
        demo = LiveDemo(plan, sim, stack, progress)
        for user in sim.users:
            demo.sign_up(user)
        demo.bootstrap_v1()
        delivery = Delivery(
            producer(demo.kafka, demo.bootstrap_servers, **{"message.max.bytes": 10_000_000})
        )
        rows: list[NightRow] = []
        for night in range(1, nights + 1):
            t_night = time.perf_counter()
            rows.append(demo.night(night, delivery))
            took = time.perf_counter() - t_night
            progress(format_row(rows[-1], night == 1, sim.users) + f"   ({took:.0f} s)")
        delivery.producer.flush(10)
        del delivery  # the producer goes before the broker does (no reconnect noise at exit)
        result = demo.result(rows)
        write_figures(out, demo.oracles, rows, demo.client, sim.users)
        result.seconds = time.perf_counter() - started
        (out / "demo.json").write_text(json.dumps(result.to_json(), indent=2))
        if on_done is not None:
            tokens = {name: oracle.token for name, oracle in demo.oracles.items()}
            on_done(result, demo.api, tokens, stack.failed)
    return result
