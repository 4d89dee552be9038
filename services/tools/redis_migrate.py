"""``ahunt redis migrate``: rename the keys of an existing deployment to this version's names.

Since user-scoped keys moved to their own namespace (``services.common.keys``), a deployment's
old ``ahunt:labels:<user>`` and ``ahunt:budget:<survey>:spent:<user>`` would be invisible to the
services. Run this once after stopping the old services and before starting the new ones (as an
admin of the Redis: ``REDIS_URL``); ``ahunt up`` runs it at every start.

Idempotent: a key already moved is not found again; where both names exist (a run interrupted,
or a service of the new version that already wrote), the two are merged without overwriting the
new key's entries (labels: the new key's label of an alert wins; budgets: the union), then the
old key is removed, in one script per key, so an interruption leaves each key moved or not.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

import redis

from services.common import keys
from services.common.settings import require_redis_url

# KEYS: old, new; ARGV: the type both must have. Replies: what happened to the key.
_MOVE = """
local old_type = redis.call('TYPE', KEYS[1])['ok']
if old_type == 'none' then return 'gone' end
if old_type ~= ARGV[1] then return 'skipped' end
local new_type = redis.call('TYPE', KEYS[2])['ok']
if new_type == 'none' then
  redis.call('RENAME', KEYS[1], KEYS[2])
  return 'renamed'
end
if new_type ~= ARGV[1] then return 'conflict' end
if ARGV[1] == 'hash' then
  local entries = redis.call('HGETALL', KEYS[1])
  for i = 1, #entries, 2 do redis.call('HSETNX', KEYS[2], entries[i], entries[i + 1]) end
else
  local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  for i = 1, #entries, 2 do redis.call('ZADD', KEYS[2], 'NX', entries[i + 1], entries[i]) end
end
redis.call('DEL', KEYS[1])
return 'merged'
"""
_TYPES = {keys.OLD_USER_KEY_PATTERNS[0]: "hash", keys.OLD_USER_KEY_PATTERNS[1]: "zset"}


def migrate(client: redis.Redis, dry_run: bool = False) -> Counter[str]:
    """Move every old key; how many were renamed, merged, skipped (not an old user key: the
    revision counter) or left in conflict (the new name holds another type: left as it is)."""
    move = client.register_script(_MOVE)
    done: Counter[str] = Counter()
    for pattern, kind in _TYPES.items():
        for raw in client.scan_iter(match=pattern, count=1000):
            old = raw.decode()
            new = keys.migrated_name(old)
            if new is None:
                done["skipped"] += 1
                continue
            if dry_run:
                done["to move"] += 1
                print(f"{old} -> {new}")
                continue
            outcome = move(keys=[old, new], args=[kind]).decode()
            done[outcome] += 1
            if outcome == "conflict":
                print(f"{old}: not moved, {new} holds another type", file=sys.stderr)
    return done


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    migrate_parser = actions.add_parser(
        "migrate", help="rename an existing deployment's keys to this version's (idempotent)"
    )
    migrate_parser.add_argument("--dry-run", action="store_true", help="only list the moves")


def main(args: argparse.Namespace) -> int:
    from services.common import store

    url = require_redis_url("redis migrate", "an admin user of that Redis")
    client = store.connect(url)
    try:
        done = migrate(client, args.dry_run)
    except redis.RedisError as exc:
        print(f"ahunt redis migrate: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    summary = ", ".join(f"{n} {what}" for what, n in sorted(done.items())) or "nothing to move"
    print(f"ahunt redis migrate: {summary}")
    return 1 if done["conflict"] else 0
