"""The scorer service: Kafka alerts in, per-user topics out, feedback cache in Redis.

I/O lives here; the decisions are in ``handler.score_batch``. Per batch, inside the shared
at-least-once loop: decode (bad records become dead letters), score each survey's alerts with its
current model (an alert that cannot be scored or encoded becomes its own dead letter), write the
feedback cache, delivery records and budgets' spending to Redis, then hand the per-user messages
and dead letters to the loop, which keeps the dead letters' originals, produces everything, waits
for every acknowledgement and only then commits. A Redis failure raises before anything is
committed, so the batch is replayed.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import redis
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from services.common import keys, redis_errors, schemas, store
from services.common.alerts import Alert, Rejected, SchemaSource, decode_message
from services.common.dead_letters import DeadLetter, OriginalStore, Problem
from services.common.infra import endpoints
from services.common.kafka import (
    ConsumerLoop,
    Delivery,
    OutMessage,
    consumer,
    ensure_topics,
    partition_lags,
    producer,
)
from services.common.metrics import BoundedValues
from services.common.registry import Registry
from services.common.settings import KafkaSettings, ModelSigningSettings, RedisSettings
from services.common.topics import DEAD_LETTERS, user_topic
from services.common.users import UserProfile
from services.scorer import budgets
from services.scorer.clock import EventClock, unix_seconds
from services.scorer.handler import Refusal, ScoredBatch, score_batch
from services.scorer.metrics import ScorerMetrics
from services.scorer.model import LoadedModel, ModelSlot
from services.scorer.records import cache_meta, delivery_record, user_alert_record
from services.scorer.selection import BudgetSelector, selector_for
from services.scorer.settings import ScorerSettings
from services.scorer.warmup import ServingCheck, WarmupSet
from services.scorer.watcher import ModelWatcher, wait_for_models

log = logging.getLogger("ahunt.scorer")
SERVICE = "scorer"


Origin = tuple[Message, int]  # the input message of an alert, and its record's index there


class Scorer:
    """Turns a batch of Kafka messages into outputs and dead letters (the loop's handler).

    Per batch: decode (bad records are dead letters), score each survey's alerts with its live
    model (an alert that fails is that alert's dead letter; a survey without a model dead-letters
    its own alerts only), route, encode (one alert's failure is its own), then one Redis pipeline
    for the feedback cache, the deliveries and the budgets' spending (``budgets``)."""

    def __init__(
        self,
        settings: ScorerSettings,
        slot: ModelSlot,
        redis_client: redis.Redis,
        metrics: ScorerMetrics,
        schema_source: SchemaSource | None,
        warmup: WarmupSet | None = None,
    ) -> None:
        self.settings, self.slot, self.redis, self.metrics = settings, slot, redis_client, metrics
        # Per-user series only if asked for, and a bounded number (users are not configuration).
        self.user_series = BoundedValues(
            settings.metrics_per_user, other="other" if settings.metrics_per_user else "all"
        )
        self.schemas = schema_source
        self.warmup = warmup or WarmupSet(settings.warmup_alerts)
        self.rng = np.random.default_rng(settings.seed)
        self.users: list[UserProfile] = []
        self.selectors: dict[str, BudgetSelector] = {}
        self.selector_models: dict[str, str] = {}  # the model version each selector has seen
        self.clocks: dict[str, EventClock] = {}
        self.partition_share = 1.0  # the part of the input partitions this replica consumes
        self.assigned: set[tuple[str, int]] | None = None  # None: not known (all partitions)
        self._restore_spending = False  # after a rebalance: read the new partitions' spending
        self._users_loaded_at = -1e18
        self._warmup_saved_at = time.monotonic()

    def paused(self, exc: BaseException | None) -> None:
        """The loop paused on a Redis error (``exc``) or resumed (``None``). The failed batch
        already spent budgets in memory, not in Redis: drop the selectors, so the batch's replay
        restores them from what Redis holds (as a restarted scorer would)."""
        if exc is not None:
            self.selectors.clear()
            self.selector_models.clear()
            self.metrics.redis_pauses.inc()

    def refresh_users(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._users_loaded_at < self.settings.users_refresh_s:
            return
        users = store.load_profiles(self.redis)
        if users != self.users:
            self.selectors = {s: selector_for(users, sel) for s, sel in self.selectors.items()}
            self.users = users
            self.metrics.users.set(len(users))
        self._users_loaded_at = now

    def set_partition_share(
        self, share: float, assigned: set[tuple[str, int]] | None = None
    ) -> None:
        """After a rebalance: this replica now sees ``share`` of the stream, and spends that
        share of every budget (the replicas together spend one budget), counting what was
        already spent from the partitions it now owns (``assigned``)."""
        self.partition_share = share
        for selector in self.selectors.values():
            selector.share = share
        self.metrics.partition_share.set(share)
        if assigned is not None:
            self.assigned = assigned
            self._restore_spending = True

    def _selector(self, survey: str, model_version: str) -> BudgetSelector:
        if survey not in self.selectors:
            selector = selector_for(self.users, min_expected=self.settings.expected_alerts)
            selector.share = self.partition_share
            budgets.restore(self.redis, survey, selector, self.assigned)
            self.selectors[survey] = selector
        elif self.selector_models.get(survey) != model_version:
            self.selectors[survey].forget_scores()  # a new model: new score distributions
        self.selector_models[survey] = model_version
        return self.selectors[survey]

    def __call__(self, messages: Sequence[Message]) -> tuple[list[OutMessage], list[DeadLetter]]:
        self.refresh_users()
        if self._restore_spending:
            for survey, selector in self.selectors.items():
                budgets.restore(self.redis, survey, selector, self.assigned)
            self._restore_spending = False
        self.metrics.consumed.inc(len(messages))
        self.metrics.batch_size.observe(len(messages))
        dead: list[DeadLetter] = []
        by_survey: dict[str, list[Alert]] = defaultdict(list)
        origins: dict[str, list[Origin]] = defaultdict(list)
        t0, c0 = time.perf_counter(), time.thread_time()
        for m in messages:
            for index, result in enumerate(decode_message(m.value() or b"", self.schemas)):
                if isinstance(result, Rejected):
                    problem = Problem(result.reason, result.message, result.index, result.alert_id)
                    dead.append(DeadLetter(m, (problem,)))
                else:
                    by_survey[result.survey].append(result)
                    origins[result.survey].append((m, index))
        self.metrics.stage("decode", t0, c0)

        outputs: list[OutMessage] = []
        # One MULTI/EXEC: Redis runs the batch's writes in one event-loop turn, so a server with
        # appendfsync always (the labels' durability) fsyncs once per batch instead of once per
        # few commands; the bench measured 13 vs 64 ms per batch of 19 cached alerts (p99 36 vs
        # 134 ms, docs/PERFORMANCE.md). Nothing else changes: every write is still on disk
        # before the batch is produced and committed.
        pipe = self.redis.pipeline(transaction=True)
        for survey, alerts in by_survey.items():
            model = self.slot.get(survey)
            if model is None:  # only this survey's alerts wait for a model (RELIABILITY.md)
                why = f"no model is live for survey {survey}"
                dead += [
                    _dead(origins[survey][i], "no_model_for_survey", why, a, "ConfigurationError")
                    for i, a in enumerate(alerts)
                ]
                continue
            outs, refused = self._score(survey, alerts, origins[survey], model, pipe)
            outputs += outs
            dead += refused
        self._save_warmup(pipe)
        t0, c0 = time.perf_counter(), time.thread_time()
        pipe.execute()  # raises on failure: nothing is committed, the batch replays
        self.metrics.stage("redis", t0, c0)
        for d in dead:
            for p in d.problems:
                self.metrics.dead_letters.labels(p.reason).inc()
        return outputs, dead

    def _clock(self, survey: str, alerts: Sequence[Alert], wall: float) -> float:
        if self.settings.clock == "wall":
            return wall
        clock = self.clocks.get(survey)
        if clock is None:
            clock = self.clocks[survey] = EventClock(self.settings.clock_window)
        return clock.advance(unix_seconds(a.observed_mjd for a in alerts))

    def _score(
        self,
        survey: str,
        alerts: list[Alert],
        origins: list[Origin],
        model: LoadedModel,
        pipe: redis.client.Pipeline,
    ) -> tuple[list[OutMessage], list[DeadLetter]]:
        wall = time.time()
        now = self._clock(survey, alerts, wall)
        t0, c0 = time.perf_counter(), time.thread_time()
        selector = self._selector(survey, model.version)
        batch = score_batch(
            alerts, model, self.users, selector, now, self.settings.novelty_mix, self.rng
        )
        self.metrics.stage("score", t0, c0)
        self.metrics.scored.labels(survey).inc(len(batch.alerts))
        refused = list(batch.refused)
        if any(r.reason == "non_finite_output" for r in refused):
            count = sum(r.reason == "non_finite_output" for r in refused)
            self.metrics.non_finite_outputs.labels(survey).inc(count)
        t1, c1 = time.perf_counter(), time.thread_time()
        mine = [origins[int(i)] for i in batch.rows]
        outputs, failed = self._publish(batch, mine, wall)
        refused += [Refusal(int(batch.rows[i]), "encoding_failed", e) for i, e in failed.items()]
        self._cache(batch, pipe, wall, set(failed))
        budgets.record(
            pipe,
            survey,
            selector,
            [
                budgets.Spent(d.user, *_partition(mine[d.alert][0]), batch.alerts[d.alert].alert_id)
                for d in batch.deliveries
            ],
        )
        self.warmup.offer(survey, batch.alerts)
        self.metrics.stage("route", t1, c1)
        error_class = {"encoding_failed": "EncodingError"}
        dead = [
            _dead(
                origins[r.alert],
                r.reason,
                r.error,
                alerts[r.alert],
                error_class.get(r.reason, "ScoringError"),
            )
            for r in refused
        ]
        return outputs, dead

    def _publish(
        self, batch: ScoredBatch, origins: list[Origin], wall: float
    ) -> tuple[list[OutMessage], dict[int, str]]:
        """The deliveries as messages; an alert whose record cannot be encoded is left out
        whole (for every user) and returned with the error."""
        by_alert: dict[int, list[OutMessage]] = defaultdict(list)
        failed: dict[int, str] = {}
        headers = schemas.headers_for(schemas.USER_ALERT) + (
            ("ahunt-model-version", batch.model_version.encode()),
        )
        for d in batch.deliveries:
            if d.alert in failed:
                continue
            message = origins[d.alert][0]
            # The input's Kafka timestamp lets any client measure consume-to-publish latency.
            source = (("ahunt-source-timestamp-ms", str(source_timestamp_ms(message)).encode()),)
            try:
                value = schemas.encode(
                    schemas.USER_ALERT, user_alert_record(batch, d, wall, time.time())
                )
            except Exception as exc:  # this alert's record, not the batch
                failed[d.alert] = f"{type(exc).__name__}: {exc}"
                by_alert.pop(d.alert, None)
                continue
            by_alert[d.alert].append(
                OutMessage(
                    user_topic(d.user),
                    value,
                    key=batch.alerts[d.alert].alert_id.encode(),
                    headers=headers + source,
                    source=message,
                )
            )
        for d in batch.deliveries:
            if d.alert not in failed:
                self.metrics.published.labels(self.user_series(d.user), d.reason).inc()
        return [out for outs in by_alert.values() for out in outs], failed

    def _cache(
        self, batch: ScoredBatch, pipe: redis.client.Pipeline, wall: float, failed: set[int]
    ) -> None:
        delivered = {d.alert for d in batch.deliveries}
        background = self.rng.random(len(batch.alerts)) < self.settings.background_sample
        ttl = self.settings.cache_ttl_s
        for i, a in enumerate(batch.alerts):
            if i in failed or (i not in delivered and not background[i]):
                continue
            meta = cache_meta(batch, i, wall, background=i not in delivered)
            store.cache_alert(pipe, a.alert_id, meta, batch.stamps[i], a.cutout_bytes, ttl)
        per_user: dict[str, dict[str, dict[str, object]]] = defaultdict(dict)
        for d in batch.deliveries:
            if d.alert not in failed:
                per_user[d.user][batch.alerts[d.alert].alert_id] = delivery_record(batch, d, wall)
        for user, records in per_user.items():  # four commands per user, not per delivery
            store.record_deliveries(pipe, user, records, ttl, self.settings.candidates_max)

    def _save_warmup(self, pipe: redis.client.Pipeline) -> None:
        """Every ``warmup_save_s``, the warm-up sets that changed, for the next replica."""
        now = time.monotonic()
        if now - self._warmup_saved_at < self.settings.warmup_save_s:
            return
        self._warmup_saved_at = now
        for survey in self.warmup.take_changed():
            pipe.set(keys.warmup_key(survey), self.warmup.dumps(survey), ex=WARMUP_KEEP_S)


WARMUP_KEEP_S = 30 * 86_400


def _partition(m: Message) -> tuple[str, int]:
    return m.topic() or "", m.partition() or 0


def _dead(origin: Origin, reason: str, error: str, alert: Alert, error_class: str) -> DeadLetter:
    message, index = origin
    return DeadLetter(message, (Problem(reason, error, index, alert.alert_id, error_class),))


def source_timestamp_ms(m: Message) -> int:
    kind, ts = m.timestamp()
    return int(ts) if kind != 0 and ts > 0 else int(time.time() * 1000)  # 0 = not available


def observe_end_to_end(metrics: ScorerMetrics, messages: Sequence[Message]) -> None:
    now_ms = time.time() * 1000
    for m in messages:
        metrics.end_to_end_seconds.observe(max(0.0, now_ms - source_timestamp_ms(m)) / 1000)


def update_lag(c: Consumer, metrics: ScorerMetrics) -> None:
    """Consumer lag per assigned partition (``kafka.partition_lags``)."""
    assigned = c.assignment()
    if not assigned:
        return
    for tp, lag in partition_lags(c, assigned, timeout_s=5):
        metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)


def partition_share(
    c: Consumer, topics: Sequence[str], assigned: Sequence[TopicPartition]
) -> float:
    """The share of ``topics``' partitions in ``assigned`` (1.0 if the metadata is unknown)."""
    metadata = c.list_topics(timeout=5).topics
    total = sum(len(metadata[t].partitions) for t in topics if t in metadata)
    mine = sum(1 for tp in assigned if tp.topic in topics)
    return min(1.0, mine / total) if total else 1.0


def build_loop(
    settings: ScorerSettings,
    kafka: KafkaSettings,
    bootstrap: str,
    redis_client: redis.Redis,
    metrics: ScorerMetrics,
    slot: ModelSlot,
    warmup: WarmupSet | None = None,
) -> ConsumerLoop:
    """The scorer's loop; ``warmup`` is the set the model watcher checks new versions on (the
    scorer fills it from the stream)."""
    schema_source = (
        SchemaSource(settings.schema_dir, settings.schema_registry_url)
        if settings.schema_dir or settings.schema_registry_url
        else None
    )
    scorer = Scorer(settings, slot, redis_client, metrics, schema_source, warmup)
    scorer.refresh_users(force=True)
    ensure_topics(
        kafka, bootstrap, [*settings.input_topics, DEAD_LETTERS, *(u.topic for u in scorer.users)]
    )
    c = consumer(
        kafka, bootstrap, settings.group_id, **{"fetch.wait.max.ms": settings.fetch_wait_max_ms}
    )
    topics = list(settings.input_topics)

    def on_assign(client: Consumer, partitions: list[TopicPartition]) -> None:
        owned = {(tp.topic, tp.partition) for tp in partitions}
        scorer.set_partition_share(partition_share(client, topics, partitions), owned)

    def on_revoke(_client: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:  # no stale lag series for partitions another replica now owns
            with contextlib.suppress(KeyError):
                metrics.lag.remove(tp.topic, str(tp.partition))

    c.subscribe(topics, on_assign=on_assign, on_revoke=on_revoke)
    for topic in topics:  # at 0 from the start, so that an increase is seen from the first one
        metrics.offsets_reset.labels(topic)

    def new_producer() -> Producer:  # librdkafka's statistics, when enabled, go to the metrics
        return producer(kafka, bootstrap, stats_cb=metrics.kafka_statistics)

    loop = ConsumerLoop(
        c,
        Delivery(new_producer(), flush_timeout_s=settings.delivery_timeout_s),
        scorer,
        SERVICE,
        model_version=lambda: ",".join(f"{s}:{v}" for s, v in slot.versions().items()) or None,
        batch_size=settings.batch_size,
        poll_timeout_s=settings.poll_timeout_s,
        on_stage=lambda stage, s: metrics.stage_seconds.labels(stage).observe(s),
        crash_after_batches=settings.crash_after_batches,
        producer_factory=new_producer,
        on_offsets_reset=lambda topic, _p, _was, _now: metrics.offsets_reset.labels(topic).inc(),
        on_committed=lambda ms: observe_end_to_end(metrics, ms),
        originals=OriginalStore(
            redis_client,
            settings.dead_letter_keep_s,
            settings.dead_letter_keep_max_bytes,
            settings.dead_letter_store_max_bytes,
        ),
        prefix_bytes=settings.dead_letter_prefix_bytes,
        on_dead_letter=metrics.dead_letter_event,
        pause_if=redis_errors.unavailable,  # Redis away or refusing: pause at the last commit
        on_pause=scorer.paused,
    )
    # Lag costs broker round trips: refresh it at most every lag_refresh_s, after a commit.
    last_lag = [-float("inf")]

    def refresh_lag(_n: int, _seconds: float) -> None:
        now = time.monotonic()
        if now - last_lag[0] >= settings.lag_refresh_s:
            last_lag[0] = now
            update_lag(c, metrics)

    loop.on_batch = refresh_lag
    return loop


def run(settings: ScorerSettings | None = None) -> int:
    """Score in the foreground. SIGTERM and SIGINT let the current batch finish, be delivered
    and committed, then exit."""
    settings = settings or ScorerSettings()
    kafka = KafkaSettings()
    try:  # a weak signing key is refused before anything starts
        model_keys = ModelSigningSettings().model_keys(RedisSettings().url)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    metrics = ScorerMetrics.default()
    metrics.serve(settings.metrics_port)
    slot = ModelSlot()
    with endpoints(kafka.bootstrap_servers, RedisSettings().url) as ep:
        redis_client = store.connect(ep.redis)
        # Models come from the registry in Redis (any host), signature checked, else from
        # model_dir's CURRENT (this host's own files). The registry is read as a user that can
        # only read it, not as the user that writes the feedback cache (redis_acl.py says why).
        registry = (
            Registry(
                store.connect(RedisSettings().registry_url or ep.redis),
                settings.registry_cache_dir,
                model_keys,
            )
            if settings.registry
            else None
        )
        warmup = WarmupSet(settings.warmup_alerts)
        check = ServingCheck(settings, warmup, redis_client)
        watcher = ModelWatcher(settings, slot, metrics, registry, check)
        wait_for_models(slot, watcher, settings.model_wait_s or float("inf"))
        watcher.start()
        loop = build_loop(settings, kafka, ep.kafka, redis_client, metrics, slot, warmup)

        def stop(_signum: int, _frame: object) -> None:
            loop.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("scoring %s with %s", settings.input_topics, slot.versions())
        try:
            loop.run()
        finally:
            watcher.stop()
            loop.consumer.close()
    return 0
