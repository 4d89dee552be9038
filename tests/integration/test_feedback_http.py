"""The API over real HTTP: in a uvicorn thread (how ``ahunt up`` hosts it), as the standalone
command with nothing configured, and the benchmark's own check on a tiny run."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import httpx
import pytest
import redis

from bench.feedback import add_arguments, main
from services.common.embedded import EmbeddedRedis, free_port
from services.feedback.serve import serve_in_thread
from services.feedback.tokens import add_user
from tests.integration.test_feedback_support import bearer, make_app, seed_alert

REPO = Path(__file__).resolve().parents[2]


def test_served_in_a_thread_over_http(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    token = bearer(add_user(redis_client, "alice"))
    seed_alert(redis_client, "5", delivered_to=["alice"])
    app, _ = make_app(redis_server.url)
    api = serve_in_thread(app)
    try:
        with httpx.Client(base_url=api.url, timeout=10) as http:
            r = http.post("/v1/feedback", json={"alert_id": "5", "label": "sn"}, headers=token)
            assert r.status_code == 201, r.text
            assert http.get("/v1/me", headers=token).json()["labels"]["total"] == 1
            assert http.get("/readyz").json()["status"] == "ok"
            big = http.post("/v1/feedback", content=b"x" * 100_000, headers=token)
            assert big.status_code == 413
    finally:
        api.stop()
    assert not api.thread.is_alive()


def _get(url: str, token: str | None = None) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {token}"} if token else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_standalone_command_just_works_with_nothing_configured() -> None:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS") and not k.startswith("AHUNT_")
    }
    env["AHUNT_FEEDBACK_PORT"] = str(port)
    process = subprocess.Popen(
        [sys.executable, "-m", "services.feedback", "--user", "alice"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        token = None
        deadline = time.monotonic() + 60
        while token is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "the command exited before printing a token"
            found = re.search(r"user alice: token (\S+)", line)
            token = found.group(1) if found else None
        assert token is not None
        base = f"http://127.0.0.1:{port}"
        while True:
            try:
                if _get(base + "/healthz")[0] == 200:
                    break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        status, me = _get(base + "/v1/me", token)
        assert status == 200 and me["user"] == "alice" and me["topic"] == "ahunt.user.alice"
        assert _get(base + "/readyz")[1]["durable"] is True  # the embedded Redis fsyncs
        assert _get(base + "/v1/alerts/1", token)[0] == 404
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


@pytest.mark.slow
def test_benchmark_checks_every_acknowledged_label(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out = tmp_path / "bench.json"
    args = parser.parse_args(
        [
            "--users",
            "5",
            "--alerts",
            "50",
            "--concurrency",
            "4",
            "--seconds",
            "1",
            "--rate",
            "50",
            "--rate-seconds",
            "1",
            "--warmup-seconds",
            "0",
            "--json",
            str(out),
        ]
    )
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert report["closed"]["acknowledged"] > 0 and report["open"]["acknowledged"] > 0
    assert report["labels_missing_after_run"] == 0
    assert report["redis"]["appendfsync"] == {"appendfsync": "always"}
