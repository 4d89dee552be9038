"""``ahunt redis migrate`` on a real Redis: an old deployment's user keys move to their user's
namespace, the revision counter stays, a key written under both names is merged without losing
the newer entries, and a second run changes nothing."""

from __future__ import annotations

import pytest
import redis

from services.cli import main as ahunt
from services.common import keys, labels
from services.common.embedded import EmbeddedRedis
from services.common.labels import LabelRecord


def label(user: str, alert_id: str, name: str, at: float) -> str:
    return LabelRecord(user=user, alert_id=alert_id, label=name, labelled_at=at).model_dump_json()


def test_migrate_moves_old_keys_once(
    redis_server: EmbeddedRedis,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    c = redis_client
    c.hset(
        "ahunt:labels:alice",
        mapping={"1": label("alice", "1", "sn", 1), "2": label("alice", "2", "lens", 2)},
    )
    old, new = label("bob", "3", "sn", 1), label("bob", "3", "lens", 9)
    c.hset("ahunt:labels:bob", mapping={"1": label("bob", "1", "sn", 1), "3": old})
    c.hset(keys.labels_key("bob"), "3", new)  # bob labelled again after an upgrade
    c.set(keys.LABELS_REVISION, 7)
    c.zadd("ahunt:budget:ztf:spent:alice", {"t:0:1": 5.0, "t:0:2": 6.0})
    c.expire("ahunt:budget:ztf:spent:alice", 3600)
    c.set("ahunt:labels:carol", "a string is not a user's labels")

    assert ahunt(["redis", "migrate", "--dry-run"]) == 0
    assert "ahunt:labels:alice -> ahunt:user:alice:labels" in capsys.readouterr().out
    assert c.exists("ahunt:labels:alice")

    assert ahunt(["redis", "migrate"]) == 0
    out = capsys.readouterr().out
    assert "2 renamed" in out and "1 merged" in out and "2 skipped" in out
    assert c.hgetall(keys.labels_key("alice")) == {
        b"1": label("alice", "1", "sn", 1).encode(),
        b"2": label("alice", "2", "lens", 2).encode(),
    }
    assert c.hgetall(keys.labels_key("bob")) == {
        b"1": label("bob", "1", "sn", 1).encode(),
        b"3": new.encode(),
    }
    assert not c.exists("ahunt:labels:alice", "ahunt:labels:bob")
    assert c.get(keys.LABELS_REVISION) == b"7"
    spent = keys.spent_key("ztf", "alice")
    assert c.zrange(spent, 0, -1, withscores=True) == [(b"t:0:1", 5.0), (b"t:0:2", 6.0)]
    assert 0 < c.ttl(spent) <= 3600
    assert c.get("ahunt:labels:carol") is not None  # not a labels hash: left alone
    assert {r.user for r in labels.all_labels(c)} == {"alice", "bob"}

    before = {k: c.type(k) for k in c.keys("*")}
    assert ahunt(["redis", "migrate"]) == 0
    assert "renamed" not in capsys.readouterr().out
    assert {k: c.type(k) for k in c.keys("*")} == before


def test_migrate_needs_a_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(SystemExit) as exit_:
        ahunt(["redis", "migrate"])
    assert exit_.value.code == 2
