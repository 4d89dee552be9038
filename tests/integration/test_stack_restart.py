"""``ahunt up`` keeps what it promises: started twice on one state directory, the second start
finds the first one's user, label and live model, and the scorer serves that model again (its
signing key is kept too). Each service runs as its own Redis user, and the registry cannot be
written by the scorer's or the feedback service's."""

from __future__ import annotations

import json
import stat
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from services.common import keys, redis_acl, store
from services.common.registry import Registry
from services.feedback.tokens import add_user
from services.tools.stack import ENV_FILE, SECRETS_FILE, Stack
from tests.integration.test_feedback_support import seed_alert


def _api(base: str, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read() or b"null")


def _scorer_serves(stack: Stack, version: str, timeout: float = 60.0) -> bool:
    url = next(s.ready_url for s in stack.specs if s.name == "scorer")
    line = f'ahunt_scorer_model_info{{survey="ztf",version="{version}"}} 1.0'
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=5) as response:
            if line in response.read().decode():
                return True
        time.sleep(0.3)
    return False


def _base(stack: Stack) -> str:
    return next(s.ready_url for s in stack.specs if s.name == "feedback").rsplit("/", 1)[0]


@pytest.mark.timeout(300)
def test_a_restart_keeps_users_labels_and_models_and_each_service_has_its_own_redis_user(
    tmp_path: Path, model_root: Path
) -> None:
    state = tmp_path / "state"
    with Stack(state_dir=state, services=("scorer", "feedback"), log_dir=tmp_path / "l1") as stack:
        assert stack.redis_url and stack.redis_users and stack.kafka
        # Both embedded servers listen on loopback only (the broker authenticates nobody).
        assert stack.kafka.startswith("127.0.0.1:") and "@127.0.0.1:" in stack.redis_url
        admin = store.connect(stack.redis_url)
        token = add_user(admin, "alice")
        registry = Registry(admin, tmp_path / "publisher", stack.model_keys)
        registry.promote("ztf", registry.publish(model_root / "ztf" / "ztf-0001").version)
        # The scorer's user writes the feedback cache (as the scorer does), alice labels.
        scorer = store.connect(stack.redis_users[redis_acl.SCORER.user])
        seed_alert(scorer, "101", delivered_to=["alice"])
        label = {"alert_id": "101", "label": "lensed_arc", "interesting": True}
        assert _api(_base(stack), "POST", "/v1/feedback", token, label)[0] == 201
        assert _scorer_serves(stack, "ztf-0001")  # read as its registry user, signature checked

        # Nobody but retrain and ahunt-admin may write the registry; nobody gets in without a
        # user (the default user is off).
        for user in (redis_acl.SCORER, redis_acl.SCORER_REGISTRY, redis_acl.FEEDBACK):
            client = store.connect(stack.redis_users[user.user])
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.set(keys.model_live_key("ztf"), "ztf-0001")
            with pytest.raises(redis.exceptions.NoPermissionError):
                Registry(client, tmp_path / user.user, stack.model_keys).publish(
                    model_root / "ztf" / "ztf-0001"
                )
        where = urlsplit(stack.redis_url)
        with pytest.raises(redis.exceptions.AuthenticationError):
            store.connect(f"redis://{where.hostname}:{where.port}/0").ping()
        for name in (SECRETS_FILE, ENV_FILE):  # they hold passwords and the signing key
            assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, name
        env = (state / ENV_FILE).read_text()
        assert (
            "REDIS_URL=" in env and "ahunt-admin" in env and stack.model_keys.signing.hex() in env
        )

    with Stack(state_dir=state, services=("scorer", "feedback"), log_dir=tmp_path / "l2") as again:
        status, labels = _api(_base(again), "GET", "/v1/feedback", token)
        assert status == 200 and [i["label"] for i in labels["items"]] == ["lensed_arc"]
        assert Registry(store.connect(again.redis_url), tmp_path / "c").current("ztf") == "ztf-0001"
        assert _scorer_serves(again, "ztf-0001")  # same key: the kept model still verifies
    # No service printed a password or the signing key into its log.
    secrets = json.loads((state / SECRETS_FILE).read_text())
    logs = "".join(p.read_text() for d in ("l1", "l2") for p in (tmp_path / d).glob("*.log"))
    assert "127.0.0.1" in logs  # the logs are there
    for secret in [secrets["model_signing_key"], *secrets["redis_passwords"].values()]:
        assert secret not in logs
