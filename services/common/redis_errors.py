"""Which Redis errors mean "Redis cannot take this now, try again" rather than "this request
is wrong": the feedback API answers them with 503 + Retry-After, the scorer pauses at its last
commit on them (docs/RELIABILITY.md, *Redis: refusing writes is a 503*, *Redis kill -9*)."""

from __future__ import annotations

import re

from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Replies that mean "Redis cannot take writes right now" rather than "this request is wrong":
# loading its data, a replica (after a failover), persistence failing, out of memory, a cluster
# moving slots, too few replicas, a long script running.
UNAVAILABLE_REPLIES = frozenset(
    {"LOADING", "MISCONF", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "OOM"}
    | {"NOREPLICAS", "BUSY"}
)
_REPLY_CODE = re.compile(r"([A-Z]+) ")


def unavailable_reply(exc: BaseException) -> str | None:
    """The reply code if ``exc`` says Redis refuses writes for now, else None. redis-py hides
    the code: some replies become classes with the code stripped (OutOfMemoryError,
    ReadOnlyError, BusyLoadingError), a pipeline's errors are prefixed with "Command # n (...)
    of pipeline caused error: ", and a script's with "Error running script ...: -".

    >>> from redis.exceptions import OutOfMemoryError, ResponseError
    >>> unavailable_reply(OutOfMemoryError("command not allowed when used memory > 'maxmemory'"))
    'OOM'
    >>> unavailable_reply(ResponseError("Command # 1 (HSET k f MISCONF x) of pipeline caused "
    ...     "error: MISCONF Redis is configured to save RDB snapshots"))
    'MISCONF'
    >>> unavailable_reply(ResponseError("Error running script (call to f_1): @user_script:1: "
    ...     "@user_script: 1: -READONLY You can't write against a read only replica."))
    'READONLY'
    >>> unavailable_reply(ResponseError("WRONGTYPE Operation against a key")) is None
    True
    """
    for kind, code in _REPLY_CLASSES:
        if isinstance(exc, kind):
            return code
    if not isinstance(exc, ResponseError):
        return None
    message = str(exc).rsplit(" of pipeline caused error: ", 1)[-1]
    if message.startswith("Error running script"):  # Redis 6: the reply inside the script's
        message = message.partition(": -")[2]
    match = _REPLY_CODE.match(message)
    return match.group(1) if match and match.group(1) in UNAVAILABLE_REPLIES else None


# The replies redis-py turns into classes (their code stripped from the message).
_REPLY_CLASSES = (
    (OutOfMemoryError, "OOM"),
    (ReadOnlyError, "READONLY"),
    (BusyLoadingError, "LOADING"),
    (TryAgainError, "TRYAGAIN"),
    (MasterDownError, "MASTERDOWN"),
    (ClusterDownError, "CLUSTERDOWN"),
)


def unavailable(exc: BaseException) -> bool:
    """Redis is unreachable, or refuses for now (:func:`unavailable_reply`).

    >>> unavailable(RedisConnectionError("Connection refused"))
    True
    >>> unavailable(ResponseError("WRONGTYPE Operation against a key"))
    False
    """
    return isinstance(exc, RedisConnectionError | RedisTimeoutError) or (
        unavailable_reply(exc) is not None
    )
