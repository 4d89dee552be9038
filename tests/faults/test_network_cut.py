"""A network cut (issue 17, fault suite): two scorers on their own test hosts (network
namespaces joined by veth pairs to a bridge), the broker and Redis on another; one scorer's cable
is pulled mid-stream. The group must rebalance to the other scorer, nothing may be lost, and the
test prints how long the stream took to recover. Skipped, with the reason, where namespaces
cannot be made (not root, or a container without CAP_NET_ADMIN/CAP_SYS_ADMIN)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Message, TopicPartition

from services.common import store
from services.common.embedded import (
    EmbeddedRedis,
    stop_server,
    tansu_binary,
    wait_for_port,
)
from services.common.kafka import consumer, ensure_topics, producer
from services.common.settings import KafkaSettings
from services.common.topics import user_topic
from services.common.users import Budget, UserProfile
from services.tools.demo.observe import metric_samples
from tests.faults.netns import HostNetwork, unavailable_reason
from tests.scorer_support import (
    REPO,
    committed,
    read_topic,
    reference_outputs,
    scorer_env,
    single_records,
    wait_until,
    ztf_stream,
)

pytestmark = pytest.mark.slow
ALERTS = int(os.environ.get("AHUNT_FAULTS_CUT_ALERTS", "1000"))
PARTITIONS, RATE = 4, 100.0
NIGHT_START = 1_704_085_200.0
BROKER_PORT, REDIS_PORT = 9092, 6379  # on the core host, which has nothing else
METRICS_PORT = 9101  # on each scorer host


@pytest.fixture(scope="module")
def network() -> Iterator[HostNetwork]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"network namespaces unavailable here: {reason}")
    with HostNetwork(["s1", "s2"]) as net:
        yield net


def _spawn(net: HostNetwork, host: str, command: list[str], log: Path, **env: str):
    with open(log, "ab") as out:
        return subprocess.Popen(
            [*net.exec_prefix(host), *command],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_a_scorer_cut_off_the_network_loses_nothing(
    network: HostNetwork,
    kafka_settings: KafkaSettings,
    group_id: str,
    model_root: Path,
    ztf_payloads: list[bytes],
    tmp_path: Path,
) -> None:
    core = network.address("core")
    bootstrap = f"{core}:{BROKER_PORT}"
    url = f"tcp://{bootstrap}"
    servers = []
    scorers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        broker = _spawn(
            network,
            "core",
            [str(tansu_binary()), "broker", "--listener-url", url]
            + ["--advertised-listener-url", url],
            tmp_path / "broker.log",
        )
        servers.append(broker)
        wait_for_port(core, BROKER_PORT, 15, broker)
        redis_process = _spawn(
            network,
            "core",
            [
                EmbeddedRedis.server_binary(),
                *("--bind", core, "--port", str(REDIS_PORT), "--save", "", "--appendonly", "yes"),
                *("--dir", str(tmp_path), "--appendfsync", "always"),
            ],
            tmp_path / "redis.log",
        )
        servers.append(redis_process)
        wait_for_port(core, REDIS_PORT, 15, redis_process)
        redis_url = f"redis://{core}:{REDIS_PORT}/0"
        client = store.connect(redis_url)
        user = UserProfile(name=f"all-{group_id}", budget=Budget(alerts=10**6))
        store.save_profile(client, user)

        src = f"alerts.{group_id}"
        ensure_topics(kafka_settings, bootstrap, [src], partitions=PARTITIONS)
        stream = list(
            ztf_stream(single_records(ztf_payloads), ALERTS, 8 * 10**17, NIGHT_START, 3_600.0)
        )
        want = reference_outputs([p for _, p in stream], model_root, client, src, PARTITIONS)
        topic = user_topic(user.name)

        env = scorer_env(bootstrap, redis_url, src, group_id, model_root, batch_size="32")
        env["AHUNT_SCORER_METRICS_PORT"] = str(METRICS_PORT)  # each host has its own ports
        # Redis is not on loopback here, so the development signing key is refused
        env["AHUNT_MODEL_SIGNING_KEY"] = secrets.token_hex(32)
        for host in network.hosts:
            scorers[host] = _spawn(
                network,
                host,
                [sys.executable, "-m", "services.scorer"],
                tmp_path / f"scorer-{host}.log",
                **env,
            )
        metrics = {h: f"http://{network.address(h)}:{METRICS_PORT}/metrics" for h in scorers}

        def consumed(host: str) -> float:
            try:
                return sum(
                    s.value
                    for s in metric_samples(metrics[host])
                    if s.name == "ahunt_scorer_alerts_consumed_total"
                )
            except OSError:
                return -1.0  # not serving yet

        # both scorers up (metrics served, the model loaded) before the stream starts
        def up() -> bool:
            if any(p.poll() is not None for p in scorers.values()):
                return True  # one exited: fail now, with its log
            return all(consumed(h) >= 0 for h in scorers)

        assert wait_until(up, 120) and all(p.poll() is None for p in scorers.values()), [
            (tmp_path / f"scorer-{h}.log").read_text()[-2000:] for h in scorers
        ]

        def offsets() -> list[int]:
            c = consumer(kafka_settings, bootstrap, group_id)
            try:
                found = c.committed([TopicPartition(src, p) for p in range(PARTITIONS)], timeout=10)
                return [tp.offset for tp in found]
            finally:
                c.close()

        produced = [-1] * PARTITIONS
        errors: list[KafkaError] = []

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                errors.append(err)
            else:
                produced[msg.partition()] = max(produced[msg.partition()], msg.offset())

        p = producer(kafka_settings, bootstrap)
        started = time.monotonic()
        cut_at: float | None = None
        at_cut: list[int] = []
        for i, (key, payload) in enumerate(stream):
            p.produce(src, payload, key.encode(), on_delivery=delivered)
            if i % 20 == 19:
                p.poll(0)
                time.sleep(max(0.0, started + (i + 1) / RATE - time.monotonic()))
            # the cut once both scorers have their share (each has consumed some)
            if cut_at is None and i >= ALERTS // 3 and all(consumed(h) > 0 for h in scorers):
                at_cut = offsets()
                network.cut("s1")
                cut_at = time.monotonic()
        assert p.flush(30) == 0 and errors == []
        assert cut_at is not None, "the scorers never shared the stream before the end"

        def recovered() -> bool:
            now = offsets()
            return all(
                n > then or n > last for n, then, last in zip(now, at_cut, produced, strict=True)
            )

        assert wait_until(recovered, 120, 0.2), (tmp_path / "scorer-s2.log").read_text()[-3000:]
        recovery_s = time.monotonic() - cut_at
        assert wait_until(
            lambda: committed(bootstrap, kafka_settings, group_id, src, PARTITIONS) >= ALERTS, 180
        ), (tmp_path / "scorer-s2.log").read_text()[-3000:]
        all_s = time.monotonic() - cut_at
        assert scorers["s2"].poll() is None
        got = read_topic(
            bootstrap,
            kafka_settings,
            topic,
            done=lambda ms: want[topic] <= {(m.key() or b"").decode() for m in ms},
        )
        keys = {(m.key() or b"").decode() for m in got}
        assert keys == want[topic], f"{len(want[topic] - keys)} missing"
        network.mend("s1")
        print(
            f"\n{ALERTS} alerts, 2 scorers on 4 partitions, s1 cut at {cut_at - started:.1f} s: "
            f"every partition committing again {recovery_s:.1f} s after the cut, all committed "
            f"{all_s:.1f} s after it; {len(got)} deliveries for {len(want[topic])} alerts, "
            "0 missing"
        )
    finally:
        for process in scorers.values():
            stop_server(process, 5)
        for process in reversed(servers):
            stop_server(process, 5)
