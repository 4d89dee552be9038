"""Every Redis key (and pub/sub channel) name of the project, from this module only.

Pure names: no Redis here. What each key holds, and who writes and reads it:

Users and the scorer's feedback cache (``services.common.store``; scorer writes, feedback reads)

- ``ahunt:users``                       hash user -> UserProfile JSON
- ``ahunt:tokens``                      hash sha256(API token) -> user (feedback API identity;
                                        tokens themselves are never stored)
- ``ahunt:alert:<alert_id>``            hash: meta JSON, stamp (preprocessed float32 .npy bytes),
                                        cutouts (original bytes); TTL (default 7 days), so a label
                                        arriving days later can still be trained on
Every key that holds a user name is in the user's own namespace ``ahunt:user:<user>:<role>``: a
name has no ':' (``services.common.users``), so a user's keys can neither equal nor prefix another
user's or any shared key, and each role's scan/ACL pattern (``labels_key("*")``) matches its own
keys only (``tests/unit/test_key_names.py``). Before, ``ahunt:labels:<user>`` of a user called
``revision`` was the revision counter; ``ahunt redis migrate`` renames such old keys.

- ``ahunt:user:<user>:delivered``       hash alert_id -> delivery JSON (score, reason, version)
- ``ahunt:user:<user>:candidates``      sorted set alert_id by score: recent unlabelled candidates
                                        for the "questions" endpoint, trimmed to a bound
- ``ahunt:session:<sha256(session id)>`` string: the sha256 of the API token a desk sign-in
                                        was made with (TTL = the session's lifetime)

Durable labels (``services.common.labels``; feedback writes, retrain reads)

- ``ahunt:user:<user>:labels``         hash alert_id -> LabelRecord JSON (one per user and alert)
- ``ahunt:train:<alert_id>``            hash: ``stamp`` and ``meta``, copied out of the TTL cache
                                        at the first label; no TTL: the permanent training set
- ``ahunt:labels:revision``             counter, incremented by every label write or undo

Feedback events (``services.feedback.events``)

- ``ahunt:feedback:outbox``             list of feedback events (JSON) written in the label's own
                                        transaction, drained to Kafka ``ahunt.feedback``
- ``ahunt:feedback:outbox:lock``        one publisher at a time
- ``ahunt:feedback:outbox:dead``        entries that cannot be encoded: kept, never dropped

The model registry (``services.common.registry``)

- ``ahunt:models:surveys``              set of surveys with at least one published version
- ``ahunt:model:<survey>:versions``     sorted set version -> its number (NNNN of <survey>-NNNN)
- ``ahunt:model:<survey>:<version>``    hash: onnx (bytes), manifest (canonical JSON), sha256,
                                        signature (``services.common.signing``),
                                        size, status, reason, created_at, promoted_at
- ``ahunt:model:<survey>:live``         string: the live version (absent until the first promote)
- ``ahunt:model:<survey>:history``      list of versions that went live, oldest first
- ``ahunt:models:announce``             pub/sub channel: one JSON message per live change

The retrain service (``services.retrain.storage``)

- ``ahunt:bootstrap:<survey>``          hash: ``meta`` JSON and ``chunk:<i>`` stamps: the
                                        bootstrap pool, which every retrain trains on again
- ``ahunt:learner:<survey>:<version>``  the version's torch learner state (warm starts)
- ``ahunt:retrain:<survey>``            hash: the last completed attempt (the loop's trigger)
- ``ahunt:retrain:<survey>:lock``       one retrain per survey at a time

The scorer's own state (``services.scorer``; ``services.common.dead_letters``)

- ``ahunt:dlq:original:<sha256>``       string: the whole input of a dead letter (TTL, size-capped)
- ``ahunt:dlq:originals``               sorted set "<sha256>:<size>" by expiry time: what the
                                        store holds, so its total stays under a cap
- ``ahunt:dlq:originals:bytes``         counter: the bytes the store holds
- ``ahunt:budget:<survey>``             hash: the budget clock and the night's start (event time)
- ``ahunt:user:<user>:spent:<survey>``  sorted set "<topic>:<partition>:<alert_id>" by delivery
                                        time: what the user's budget spent, per input partition,
                                        so a restarted or added replica spends only the rest
- ``ahunt:scorer:warmup:<survey>``      the real stamps models are checked on before they serve

Keys of the layout before user namespaces (``ahunt redis migrate`` renames them; nothing else
reads them)

- ``ahunt:labels:<user>``               now :func:`labels_key`
- ``ahunt:budget:<survey>:spent:<user>`` now :func:`spent_key`
"""

from __future__ import annotations

USERS = "ahunt:users"
TOKENS = "ahunt:tokens"
FEEDBACK_OUTBOX = "ahunt:feedback:outbox"
FEEDBACK_OUTBOX_LOCK = "ahunt:feedback:outbox:lock"
FEEDBACK_OUTBOX_DEAD = "ahunt:feedback:outbox:dead"
LABELS_REVISION = "ahunt:labels:revision"
MODEL_SURVEYS = "ahunt:models:surveys"
MODELS_ANNOUNCE = "ahunt:models:announce"  # a pub/sub channel
_USER_PREFIX = "ahunt:user:"
DEAD_LETTER_ORIGINALS = "ahunt:dlq:originals"
DEAD_LETTER_ORIGINALS_BYTES = "ahunt:dlq:originals:bytes"


def alert_key(alert_id: str) -> str:
    return f"ahunt:alert:{alert_id}"


def session_key(session_hash: str) -> str:
    return f"ahunt:session:{session_hash}"


def _in_user_namespace(user: str, role: str) -> str:
    """A key of ``user``'s own namespace (every key holding a user name is one of these)."""
    return f"{_USER_PREFIX}{user}:{role}"


def delivered_key(user: str) -> str:
    return _in_user_namespace(user, "delivered")


def candidates_key(user: str) -> str:
    return _in_user_namespace(user, "candidates")


def labels_key(user: str) -> str:
    """A user's labels (``labels_key("*")`` is the scan pattern of every user's).

    >>> labels_key("alice")
    'ahunt:user:alice:labels'
    """
    return _in_user_namespace(user, "labels")


def train_key(alert_id: str) -> str:
    return f"ahunt:train:{alert_id}"


def model_key(survey: str, version: str) -> str:
    return f"ahunt:model:{survey}:{version}"


def model_versions_key(survey: str) -> str:
    return f"ahunt:model:{survey}:versions"


def model_live_key(survey: str) -> str:
    return f"ahunt:model:{survey}:live"


def model_history_key(survey: str) -> str:
    return f"ahunt:model:{survey}:history"


def bootstrap_key(survey: str) -> str:
    return f"ahunt:bootstrap:{survey}"


def learner_key(survey: str, version: str) -> str:
    return f"ahunt:learner:{survey}:{version}"


def retrain_state_key(survey: str) -> str:
    return f"ahunt:retrain:{survey}"


def retrain_lock_key(survey: str) -> str:
    return f"ahunt:retrain:{survey}:lock"


def dead_letter_original_key(sha256: str) -> str:
    return f"ahunt:dlq:original:{sha256}"


def budget_key(survey: str) -> str:
    return f"ahunt:budget:{survey}"


def spent_key(survey: str, user: str) -> str:
    return _in_user_namespace(user, f"spent:{survey}")


def warmup_key(survey: str) -> str:
    return f"ahunt:scorer:warmup:{survey}"


# The layout before user namespaces, for ``ahunt redis migrate`` only: scan patterns and the
# new name of a key that matched (None: not an old user key, such as the revision counter).
OLD_USER_KEY_PATTERNS = ("ahunt:labels:*", "ahunt:budget:*:spent:*")


def migrated_name(key: str) -> str | None:
    """The new name of a key of the old layout, or None.

    >>> migrated_name("ahunt:labels:alice")
    'ahunt:user:alice:labels'
    >>> migrated_name("ahunt:budget:ztf:spent:bob")
    'ahunt:user:bob:spent:ztf'
    >>> migrated_name(LABELS_REVISION) is None
    True
    """
    parts = key.split(":")
    if len(parts) == 3 and key.startswith("ahunt:labels:") and key != LABELS_REVISION:
        return labels_key(parts[2])
    if len(parts) == 5 and parts[:2] == ["ahunt", "budget"] and parts[3] == "spent":
        return spent_key(parts[2], parts[4])
    return None
