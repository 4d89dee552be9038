"""What users' budgets spent, in Redis, so a restarted or added replica spends only the rest.

Replicas share every budget by partition share (``BudgetSelector.share``): a replica consuming k of
n partitions spends k/n of each budget. Spending is therefore kept per input partition: each
delivery is one member ``<topic>:<partition>:<alert_id>`` of the user's sorted set, scored by the
selector's clock, written in the batch's own Redis pipeline (no extra round trip: Redis is written
before the outputs are produced and the offsets committed, so a batch that is replayed has its
spending there already; a replayed delivery is the same member, never counted twice). A replica
reads the spending of the partitions it owns when it creates a survey's selector and after every
rebalance, so a partition's spending follows the partition to whichever replica takes it.

Beside it, per survey, the selector's clock and the start of its observing night, so that a
restart after a pause still sees a new night, and a restart within a night keeps its deliveries.
Reads cost one pipelined round trip per survey, at start and at rebalances only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis

from services.common import keys
from services.scorer.selection import BudgetSelector

_KEEP_S = 30 * 86_400  # the survey's clock and night start outlive any pause in the stream


@dataclass(frozen=True)
class Spent:
    """One delivery to record: the user, the input partition it came from and the alert."""

    user: str
    topic: str
    partition: int
    alert_id: str


def record(
    pipe: redis.client.Pipeline, survey: str, selector: BudgetSelector, spent: Sequence[Spent]
) -> None:
    """Queue the batch's deliveries and the selector's clock on ``pipe`` (the batch's own)."""
    clock = selector.clock
    if clock is None:
        return
    pipe.hset(keys.budget_key(survey), "clock", repr(clock))
    if selector.night_start is not None:
        pipe.hset(keys.budget_key(survey), "night_start", repr(selector.night_start))
    pipe.expire(keys.budget_key(survey), _KEEP_S)
    periods = dict(zip(selector.users, selector.periods, strict=True))
    for user in sorted({s.user for s in spent}):
        key = keys.spent_key(survey, user)
        members = {f"{s.topic}:{s.partition}:{s.alert_id}": clock for s in spent if s.user == user}
        pipe.zadd(key, members)
        period = float(periods.get(user, 86_400.0))
        pipe.zremrangebyscore(key, "-inf", f"({clock - period!r}")
        pipe.expire(key, int(max(period, 86_400.0) * 2))


def restore(
    client: redis.Redis,
    survey: str,
    selector: BudgetSelector,
    assigned: set[tuple[str, int]] | None,
) -> int:
    """Give ``selector`` the spending of the partitions in ``assigned`` (None: all of them);
    returns the deliveries restored."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.budget_key(survey))
    for user in selector.users:
        pipe.zrange(keys.spent_key(survey, user), 0, -1, withscores=True)
    state, *per_user = pipe.execute()
    spent: dict[str, list[float]] = {}
    for user, members in zip(selector.users, per_user, strict=True):
        times = []
        for member, score in members:
            topic, partition, _alert = _text(member).split(":", 2)
            if assigned is None or (topic, int(partition)) in assigned:
                times.append(float(score))
        spent[user] = times
    selector.restore(spent, _number(state, b"clock"), _number(state, b"night_start"))
    return sum(len(t) for t in spent.values())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _number(state: dict[bytes, bytes], field: bytes) -> float | None:
    value = state.get(field)
    return None if value is None else float(value)
